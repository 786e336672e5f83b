package main

import (
	"strings"
	"testing"
)

func TestScopeFlags(t *testing.T) {
	if got := (&scopeFlags{}).cacheNamespaces(); got != nil {
		t.Errorf("no namespaces: want the whole cluster (nil), got %v", got)
	}
	f := &scopeFlags{namespaces: []string{"ds-prod", "ds-stage"}}
	if err := f.validate(); err != nil {
		t.Fatal(err)
	}
	if got := f.cacheNamespaces(); len(got) != 2 {
		t.Errorf("want both namespaces cached, got %v", got)
	}
	for _, bad := range [][]string{{"Ds_Prod"}, {"a", "a"}} {
		err := (&scopeFlags{namespaces: bad}).validate()
		if err == nil || !strings.Contains(err.Error(), "--watch-namespaces") {
			t.Errorf("%q: want an error naming --watch-namespaces, got %v", bad, err)
		}
	}
}
