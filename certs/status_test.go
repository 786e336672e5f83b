package certs

import (
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestServedExpiry(t *testing.T) {
	b, err := Issue(Request{DNSNames: []string{"localhost"}, Validity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ServedExpiry(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(got); d < 47*time.Hour || d > 49*time.Hour {
		t.Errorf("expiry %s is %s away, want about 48h", got, d)
	}
	if _, err := ServedExpiry(t.TempDir()); err == nil {
		t.Error("an empty cert dir has no expiry")
	}
	if _, err := Expiry([]byte("not pem")); err == nil || !strings.Contains(err.Error(), "PEM") {
		t.Errorf("want an error naming PEM, got %v", err)
	}
}

func TestCertificateReady(t *testing.T) {
	c := &cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: "pdguard-system", Name: "pdguard-serving"}}
	if err := CertificateReady(c); err == nil || !strings.Contains(err.Error(), "no Ready condition") {
		t.Errorf("no status: got %v", err)
	}
	c.Status.Conditions = []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionFalse, Reason: "Issuing", Message: "issuer not found"}}
	if err := CertificateReady(c); err == nil || !strings.Contains(err.Error(), "issuer not found") || !strings.Contains(err.Error(), "pdguard-system/pdguard-serving") {
		t.Errorf("not ready: got %v", err)
	}
	c.Status.Conditions[0].Status = cmmeta.ConditionTrue
	if err := CertificateReady(c); err != nil {
		t.Errorf("ready: got %v", err)
	}
}
