package certs

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
)

// Expiry is when the first certificate in certPEM (the leaf of a chain) stops being valid.
func Expiry(certPEM []byte) (time.Time, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}, errors.New("no PEM CERTIFICATE block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing the certificate: %w", err)
	}
	return c.NotAfter, nil
}

// ServedExpiry reads tls.crt in dir, the certificate the webhook server serves.
func ServedExpiry(dir string) (time.Time, error) {
	path := filepath.Join(dir, CertFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	t, err := Expiry(raw)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// CertificateReady says whether cert-manager reports the Certificate Ready, and if not,
// the reason and message of its Ready condition.
func CertificateReady(c *cmapi.Certificate) error {
	for _, cond := range c.Status.Conditions {
		if cond.Type != cmapi.CertificateConditionReady {
			continue
		}
		if cond.Status == cmmeta.ConditionTrue {
			return nil
		}
		return fmt.Errorf("cert-manager Certificate %s/%s is not Ready (%s): %s", c.Namespace, c.Name, cond.Reason, cond.Message)
	}
	return fmt.Errorf("cert-manager Certificate %s/%s has no Ready condition yet: is cert-manager running?", c.Namespace, c.Name)
}
