//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// laneStatefulSet creates the fixture StatefulSet in its own namespace, labelled for one
// webhook lane (laneLabel=lane), which only that lane's pdguard sees.
func laneStatefulSet(ctx context.Context, ns, lane string) (*appsv1.StatefulSet, error) {
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	sts := chartStatefulSet(ns)
	sts.Labels[laneLabel] = lane
	return env.admin.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{})
}

// admissionCounts tallies a loop of server-side dry-run updates of a guarded StatefulSet
// through the API server: tag changes, which pdguard must answer with a canary partition,
// and unrelated changes, which it must let through as they are.
type admissionCounts struct {
	mu                       sync.Mutex
	tagChanges, otherChanges int
	failed, unguarded        int
	firstFailures            []string
	done                     chan struct{}
}

func (c *admissionCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d requests (%d tag changes, %d unrelated changes): %d failed, %d admitted unguarded",
		c.tagChanges+c.otherChanges, c.tagChanges, c.otherChanges, c.failed, c.unguarded)
}

func (c *admissionCounts) record(tag bool, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tag {
		c.tagChanges++
	} else {
		c.otherChanges++
	}
	if what == "" {
		return
	}
	if strings.HasPrefix(what, "unguarded") {
		c.unguarded++
	} else {
		c.failed++
	}
	if len(c.firstFailures) < 5 {
		c.firstFailures = append(c.firstFailures, time.Now().Format("15:04:05.000")+" "+what)
	}
}

// loopAdmissions sends updates of live, one after another, until stop is closed.
func loopAdmissions(ctx context.Context, live *appsv1.StatefulSet, stop <-chan struct{}) *admissionCounts {
	counts := &admissionCounts{done: make(chan struct{})}
	go func() {
		defer close(counts.done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			req := live.DeepCopy()
			// Unconditional: the StatefulSet controller's status writes move the stored
			// resourceVersion, and a conflict is not an admission answer.
			req.ResourceVersion = ""
			tag := i%2 == 0
			if tag {
				fixture.WithTag(req, newTag)
			} else {
				req.Spec.Template.Annotations = map[string]string{"example.com/touch": fmt.Sprint(i)}
			}
			stored, err := env.admin.AppsV1().StatefulSets(live.Namespace).Update(ctx, req, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			switch {
			case err != nil:
				counts.record(tag, err.Error())
			case tag && (partitionOf(stored) != *live.Spec.Replicas-1 || stored.Annotations[rollout.CanaryAnnotation] == ""):
				counts.record(tag, fmt.Sprintf("unguarded: tag change admitted with partition %d", partitionOf(stored)))
			default:
				counts.record(tag, "")
			}
		}
	}()
	return counts
}

// wait blocks until the loop has sent its last request.
func (c *admissionCounts) wait() { <-c.done }
