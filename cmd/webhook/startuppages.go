package main

import (
	"context"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/pdguard/pdguard/internal/binarypages"
)

// releaseStartupPages hands back the binary's pages once start-up is over: the caches'
// first lists decoded, the policy compiled, every package initialised.
func releaseStartupPages(ctx context.Context, c cache.Cache, log logr.Logger) {
	if !c.WaitForCacheSync(ctx) {
		return
	}
	advised, err := binarypages.Release()
	if err != nil {
		log.Error(err, "could not hand back the binary's start-up pages; they stay mapped")
		return
	}
	log.Info("handed back the binary's start-up pages", "advisedMiB", advised>>20)
}
