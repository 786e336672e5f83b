package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pdguard/pdguard/certs"
)

func TestCertFlagsValidate(t *testing.T) {
	selfManaged := func(edit func(*certFlags)) certFlags {
		f := certFlags{mode: certModeSelfManaged, secret: "pdguard-tls", webhookConfig: "pdguard", dnsNames: []string{"pdguard.pdguard-system.svc"},
			validity: 365 * 24 * time.Hour, renewBefore: 90 * 24 * time.Hour, checkEvery: time.Hour}
		if edit != nil {
			edit(&f)
		}
		return f
	}
	for name, tc := range map[string]struct {
		f    certFlags
		want string
	}{
		"files":                       {certFlags{mode: certModeFiles}, ""},
		"self-managed":                {selfManaged(nil), ""},
		"unknown mode":                {certFlags{mode: "vault"}, "--cert-mode"},
		"cert-manager without name":   {certFlags{mode: certModeCertManager}, "--cert-manager-certificate"},
		"self-managed without names":  {selfManaged(func(f *certFlags) { f.dnsNames = nil }), "--cert-dns-names"},
		"renewal longer than life":    {selfManaged(func(f *certFlags) { f.renewBefore = f.validity }), "--cert-renew-before"},
		"check slower than renewal":   {selfManaged(func(f *certFlags) { f.checkEvery = f.renewBefore }), "--cert-check-interval"},
		"self-managed without secret": {selfManaged(func(f *certFlags) { f.secret = "" }), "--cert-secret"},
	} {
		err := tc.f.validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: want error naming %q, got %v", name, tc.want, err)
		}
	}
}

func TestCertificateReadiness(t *testing.T) {
	b, err := certs.Issue(certs.Request{DNSNames: []string{"localhost"}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	notReady := errors.New("Certificate pdguard-serving is not Ready")
	now := time.Now()
	if err := certificateReadiness(nil, t.TempDir(), now); err != nil {
		t.Errorf("a Ready Certificate is ready: %v", err)
	}
	if err := certificateReadiness(notReady, dir, now); err != nil {
		t.Errorf("not Ready but still serving a valid certificate should stay ready: %v", err)
	}
	if err := certificateReadiness(notReady, dir, now.Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("not Ready and expired: want an error naming the expiry, got %v", err)
	}
	if err := certificateReadiness(notReady, t.TempDir(), now); err == nil || !strings.Contains(err.Error(), "no serving certificate") {
		t.Errorf("not Ready and no certificate: got %v", err)
	}
}
