package rollout

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// VerdictKey signs the verdicts pdguard issues. Anyone who may patch pods can write a
// verdict annotation, so the promotion gate trusts only one that carries an HMAC made
// with this key, which lives in a Secret only pdguard's ServiceAccount can read. Every
// replica loads the same Secret, so each accepts the others' verdicts, and a restart or a
// new leader keeps the proof.
type VerdictKey []byte

// MinVerdictKeyBytes is the shortest key accepted: HMAC-SHA256 gains nothing past 32.
const MinVerdictKeyBytes = 32

// NewVerdictKey returns a random key of 32 bytes of entropy, as printable text so that
// the Secret holding it can be read and copied with kubectl.
func NewVerdictKey() (VerdictKey, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generating the verdict key: %w", err)
	}
	return VerdictKey(base64.RawStdEncoding.EncodeToString(raw)), nil
}

// Sign sets v.Signature for the pod it is about. The signature covers the pod's UID, so
// a verdict copied to another pod, or onto a pod created later under the same name (a
// template annotation, a restored backup), proves nothing.
func (k VerdictKey) Sign(pod *corev1.Pod, v *Verdict) {
	v.Signature = k.signature(pod, v)
}

// Trust returns nil when v was signed with the key for this pod, else what is wrong
// with it, in words fit for a denial.
func (k VerdictKey) Trust(pod *corev1.Pod, v *Verdict) error {
	if v.Signature == "" {
		return errors.New("it carries no pdguard signature")
	}
	got, err := base64.RawStdEncoding.DecodeString(v.Signature)
	if err != nil {
		return errors.New("its signature is not pdguard's (not base64)")
	}
	want, _ := base64.RawStdEncoding.DecodeString(k.signature(pod, v))
	if !hmac.Equal(got, want) {
		return errors.New("its signature does not match: it was written or changed by someone other than pdguard")
	}
	return nil
}

func (k VerdictKey) signature(pod *corev1.Pod, v *Verdict) string {
	mac := hmac.New(sha256.New, k)
	// Length-prefixed fields, so no two different verdicts share a message.
	for _, f := range []string{
		"pdguard.io/replace-profile/v1", pod.Namespace, pod.Name, string(pod.UID),
		v.Verdict, v.Revision, v.ContainerID, v.From, v.To,
		v.ObservedAt.UTC().Format(time.RFC3339Nano), v.Reason,
	} {
		fmt.Fprintf(mac, "%d:%s;", len(f), f)
	}
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseVerdictKey reads a key as stored in pdguard's Secret.
func ParseVerdictKey(raw []byte) (VerdictKey, error) {
	k := VerdictKey(raw)
	if len(k) < MinVerdictKeyBytes {
		return nil, fmt.Errorf("the verdict key has %d bytes, want at least %d", len(k), MinVerdictKeyBytes)
	}
	return k, nil
}
