package rollout

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzAnnotations reads pdguard's annotations as anyone could have written them: the
// verdict on the canary pod and the canary record on the StatefulSet. Whatever they
// hold, a verdict pdguard did not sign never proves a pod, an unreadable one is
// reported as such, a record that names another image than the template runs is not the
// live one, and the annotations never change whether the canary is open.
func FuzzAnnotations(f *testing.F) {
	p := pod(2, canaryRev, canaryImage, time.Hour)
	good, _ := json.Marshal(succeeded(p))
	signed := withVerdict(p, succeeded(p), true).Annotations[ReplaceProfileAnnotation]
	record := canarySet().Annotations[CanaryAnnotation]
	for _, seed := range [][2]string{
		{signed, record},
		{string(good), record},
		{strings.Replace(signed, "9.1.0.0", "9.1.0.1", 1), strings.Replace(record, canaryImage, stableImage, 1)},
		{`{"verdict":"Succeeded","signature":"!!"}`, `{"toImage":"` + canaryImage + `","partition":-1}`},
		{`{"verdict":""}`, `{"started":"not a time"}`},
		{`{"verdict":"Succeeded","observedAt":"2026-12-01T12:00:00.123456789+05:00"}`, `null`},
		{`null`, `[]`},
		{"", ""},
		{"\x00\u202e{", "{\"toImage\":\"\xff\"}"},
	} {
		f.Add(seed[0], seed[1])
	}
	sts := canarySet()
	open := CanaryOpen(sts)
	f.Fuzz(func(t *testing.T, verdict, record string) {
		s := sts.DeepCopy()
		s.Annotations[CanaryAnnotation] = record
		if CanaryOpen(s) != open {
			t.Fatal("the canary record changed whether the canary is open")
		}
		rec, recErr := ReadCanaryRecord(s)
		if (rec == nil) == (recErr == nil) {
			t.Fatalf("ReadCanaryRecord(%q) = %+v, %v: want a record or an error", record, rec, recErr)
		}
		if recErr != nil && !strings.Contains(recErr.Error(), CanaryAnnotation) {
			t.Fatalf("error %q does not name the annotation", recErr)
		}
		if live := LiveCanaryRecord(s, "pingdirectory"); live != nil && live.ToImage != canaryImage {
			t.Fatalf("record for %q taken as live on a template running %q", live.ToImage, canaryImage)
		}

		forged := p.DeepCopy()
		forged.Annotations = map[string]string{ReplaceProfileAnnotation: verdict}
		v, err := ReadVerdict(forged)
		if (v == nil) == (err == nil) {
			t.Fatalf("ReadVerdict(%q) = %+v, %v: want a verdict or an error", verdict, v, err)
		}
		if v != nil && v.Verdict == "" {
			t.Fatalf("ReadVerdict(%q) returned a verdict without a verdict field", verdict)
		}
		state := observe(s, *forged)
		if len(state.Pods) != 1 {
			t.Fatalf("the canary pod was left out: %d pods", len(state.Pods))
		}
		ps := state.Pods[0]
		if ps.Proven && verdict != signed {
			t.Fatalf("a verdict pdguard did not sign proves the canary: %q", verdict)
		}
		if err != nil && (ps.Evidence != EvidenceUnreadable || ps.VerdictErr == nil) {
			t.Fatalf("unreadable verdict %q reported as %s", verdict, ps.Evidence)
		}
		if ps.Proven && state.ProvenFrom(2) != true {
			t.Fatal("a proven canary does not prove the partition it sits above")
		}
		if v == nil {
			return
		}

		// pdguard re-signs what it reads: the signature survives the trip through the
		// annotation, so a restart keeps the proof.
		v.Signature = ""
		testKey.Sign(forged, v)
		raw, err := json.Marshal(v)
		if err != nil {
			return // a time JSON cannot hold; json.Unmarshal could not have produced it
		}
		forged.Annotations[ReplaceProfileAnnotation] = string(raw)
		back, err := ReadVerdict(forged)
		if err != nil {
			t.Fatalf("pdguard's own verdict %s does not read back: %v", raw, err)
		}
		if err := testKey.Trust(forged, back); err != nil {
			t.Fatalf("pdguard's own verdict %s is not trusted after a round trip: %v", raw, err)
		}
		if !back.ObservedAt.Equal(v.ObservedAt) || !reflect.DeepEqual(back.Signature, v.Signature) {
			t.Fatalf("the round trip changed the verdict: %+v -> %+v", v, back)
		}
		copied := forged.DeepCopy()
		copied.UID = "another-pod"
		if testKey.Trust(copied, back) == nil {
			t.Fatal("a verdict copied to another pod is trusted")
		}
	})
}
