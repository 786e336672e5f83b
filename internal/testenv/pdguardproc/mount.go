package pdguardproc

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// MountSecret plays the kubelet for a Secret volume: it keeps dir holding the Secret's keys
// as files, swapped in all at once the way the kubelet's atomic writer does (a new
// timestamped directory, then the ..data symlink renamed over), until ctx ends. It
// returns how many times it wrote the files through the channel it closes at the end.
func MountSecret(ctx context.Context, cs kubernetes.Interface, namespace, name, dir string, every time.Duration) (<-chan int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	writes := make(chan int, 1)
	go func() {
		var last map[string][]byte
		n := 0
		defer func() { writes <- n; close(writes) }()
		for {
			s, err := cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
			if err == nil && len(s.Data) > 0 && !maps.EqualFunc(last, s.Data, func(a, b []byte) bool { return string(a) == string(b) }) {
				if err := writeAtomically(dir, s.Data, n); err == nil {
					last, n = s.Data, n+1
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	return writes, nil
}

func writeAtomically(dir string, data map[string][]byte, generation int) error {
	ts := filepath.Join(dir, "..data_"+strconv.Itoa(generation))
	if err := os.MkdirAll(ts, 0o755); err != nil {
		return err
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(ts, k), v, 0o600); err != nil {
			return err
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return fmt.Errorf("swapping ..data: %w", err)
	}
	for k := range data {
		link := filepath.Join(dir, k)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
				return err
			}
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}
