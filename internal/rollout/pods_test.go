package rollout

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// podSelector must select what metav1.LabelSelectorAsSelector selects, whose checks it
// skips only for a selector of labels alone.
func TestPodSelectorSelectsAsTheAPIDoes(t *testing.T) {
	podLabels := []labels.Set{
		{"app.kubernetes.io/name": "pingdirectory", "app.kubernetes.io/instance": "pd"},
		{"app.kubernetes.io/name": "pingdirectory", "app.kubernetes.io/instance": "other"},
		{"app.kubernetes.io/name": "pingdirectory"},
		{},
	}
	for _, ps := range []*metav1.LabelSelector{
		nil,
		{},
		{MatchLabels: map[string]string{"app.kubernetes.io/name": "pingdirectory", "app.kubernetes.io/instance": "pd"}},
		{MatchLabels: map[string]string{"app.kubernetes.io/name": "pingdirectory"}},
		{MatchLabels: map[string]string{"app.kubernetes.io/name": "pingdirectory"}, MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app.kubernetes.io/instance", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"other"}},
		}},
	} {
		want, err := metav1.LabelSelectorAsSelector(ps)
		if err != nil {
			t.Fatal(err)
		}
		got, err := podSelector(ps)
		if err != nil {
			t.Fatalf("%v: %v", ps, err)
		}
		for _, l := range podLabels {
			if got.Matches(l) != want.Matches(l) {
				t.Errorf("selector %v on labels %v: matches %v, the API's selector %v", ps, l, got.Matches(l), want.Matches(l))
			}
		}
	}
	if _, err := podSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}); err == nil {
		t.Error("an invalid expression was not reported")
	}
}

func BenchmarkPodSelector(b *testing.B) {
	ps := &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "pingdirectory", "app.kubernetes.io/instance": "pd"}}
	b.Run("podSelector", func(b *testing.B) {
		for b.Loop() {
			_, _ = podSelector(ps)
		}
	})
	b.Run("LabelSelectorAsSelector", func(b *testing.B) {
		for b.Loop() {
			_, _ = metav1.LabelSelectorAsSelector(ps)
		}
	})
}
