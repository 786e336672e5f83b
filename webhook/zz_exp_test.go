package webhook

import (
	"encoding/json"
	"testing"

	gojson "github.com/goccy/go-json"
	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/go-json-experiment/json/jsontext"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

func BenchmarkExpDecode(b *testing.B) {
	plain, _ := json.Marshal(fixture.Live())
	opts := jsonv1.DefaultOptionsV1()
	b.Run("goccy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s appsv1.StatefulSet
			if err := gojson.Unmarshal(plain, &s); err != nil { b.Fatal(err) }
		}
	})
	b.Run("v2-v1opts", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s appsv1.StatefulSet
			if err := jsonv2.Unmarshal(plain, &s, opts); err != nil { b.Fatal(err) }
		}
	})
	b.Run("v2-default", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s appsv1.StatefulSet
			if err := jsonv2.Unmarshal(plain, &s); err != nil { b.Fatal(err) }
		}
	})
	b.Run("v2-scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v jsontext.Value
			if err := jsonv2.Unmarshal(plain, &v); err != nil { b.Fatal(err) }
		}
	})
}
