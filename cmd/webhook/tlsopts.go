package main

import "crypto/tls"

// tlsOptions are the TLS settings of pdguard's HTTPS servers. http2 offers h2 by ALPN
// besides http/1.1.
//
// The webhook server offers HTTP/2 by default: the API server then speaks it, and when a
// replica stops, Go's HTTP/2 server tells it so with GOAWAY, after which the API server's
// HTTP/2 client retries on another connection every request the replica had not taken.
// Over HTTP/1.1 nothing can tell a client that an idle kept-alive connection is about to
// close, so a request it sends at that moment ends in EOF and the fail-closed validating
// webhook refuses the write. The stream-reset attacks that made operators turn HTTP/2 off
// (CVE-2023-44487, CVE-2023-39325) are bounded in Go's HTTP/2 server since Go 1.21.3.
// Metrics keep HTTP/1.1: a scraper gains nothing from HTTP/2.
func tlsOptions(http2 bool) []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if http2 {
			c.NextProtos = []string{"h2", "http/1.1"}
		} else {
			c.NextProtos = []string{"http/1.1"}
		}
	}}
}
