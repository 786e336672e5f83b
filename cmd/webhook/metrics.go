package main

import (
	"crypto/tls"

	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/pdguard/pdguard/internal/metricsauth"
)

// metricsOptions: plain HTTP, or HTTPS where every scrape's bearer token is checked with a
// TokenReview and its right to GET /metrics with a SubjectAccessReview. TLS options only
// mean something for the second.
func metricsOptions(addr string, secure bool, tlsOpts []func(*tls.Config)) metricsserver.Options {
	if !secure {
		return metricsserver.Options{BindAddress: addr}
	}
	return metricsserver.Options{BindAddress: addr, SecureServing: true, FilterProvider: metricsauth.FilterProvider, TLSOpts: tlsOpts}
}
