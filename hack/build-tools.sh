#!/usr/bin/env bash
# Builds the pinned control-plane binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok with its CRDs and stages, helm 3 and 4) from the Go module
# proxy into bin/tools, once.
# A binary already present at its pinned version is kept, so reruns cost nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
HELM4_VERSION=${HELM4_VERSION:-v4.3.1}
HELM3_VERSION=${HELM3_VERSION:-v3.22.0}
out="$root/bin/tools"
mkdir -p "$out"
# bin/ is a module of its own so that `go test ./...` never walks into what lands here
# (KWOK's kustomize tree carries Go test files).
[ -f "$root/bin/go.mod" ] || printf 'module pdguard.local/bin\n' > "$root/bin/go.mod"

stamp() { echo "$1" > "$out/.$2.version"; }
have() { [ -x "$out/$2" ] && [ "$(cat "$out/.$2.version" 2>/dev/null)" = "$1" ]; }
log() { printf '[build-tools %s] %s\n' "$(date +%T)" "$*" >&2; }

build_kube() {
	local name=$1
	have "$KUBE_VERSION" "$name" && return 0
	log "building $name $KUBE_VERSION"
	local major minor
	major=$(echo "${KUBE_VERSION#v}" | cut -d. -f1)
	minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
	local ld=""
	# Without these the server reports v0.0.0-master and helm's KubeVersion checks fail.
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
	done
	(cd "$root/hack/tools" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ld" -o "$out/$name" "k8s.io/kubernetes/cmd/$name")
	stamp "$KUBE_VERSION" "$name"
}

build_etcd() {
	have "$ETCD_VERSION" etcd && return 0
	log "building etcd $ETCD_VERSION"
	# etcd's server module carries replace directives, so `go install ...@version` is refused;
	# a scratch module that requires it builds it instead.
	local scratch
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' RETURN
	(
		cd "$scratch"
		go mod init pdguard.local/etcdbuild >/dev/null 2>&1
		printf 'package main\nimport _ "go.etcd.io/etcd/server/v3"\nfunc main() {}\n' > tools.go
		go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
		go mod tidy >/dev/null 2>&1 || true
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
	)
	stamp "$ETCD_VERSION" etcd
}

install_go() {
	local name=$1 version=$2 pkg=$3
	have "$version" "$name" && return 0
	log "building $name $version"
	local gobin
	gobin=$(mktemp -d)
	CGO_ENABLED=0 GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "$pkg@$version"
	mv "$gobin/$(basename "$pkg")" "$out/$name"
	rm -rf "$gobin"
	stamp "$version" "$name"
}

# kwok's CRDs and node/pod stages live in its module, not its binary; a copy next to the
# binary keeps them at the same version (the module cache is read-only and may be cleaned).
copy_kwok_manifests() {
	have "$KWOK_VERSION" kwok-kustomize && return 0
	log "copying kwok $KWOK_VERSION manifests"
	local scratch
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' RETURN
	(cd "$scratch" && GOWORK=off GOFLAGS= go mod download "sigs.k8s.io/kwok@$KWOK_VERSION")
	rm -rf "$out/kwok-kustomize"
	cp -R "$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize" "$out/kwok-kustomize"
	chmod -R u+w "$out/kwok-kustomize"
	stamp "$KWOK_VERSION" kwok-kustomize
}

want=${*:-all}
for w in $want; do
	case $w in
	all)
		build_etcd
		build_kube kube-apiserver
		build_kube kube-controller-manager
		build_kube kube-scheduler
		build_kube kubectl
		install_go kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
		copy_kwok_manifests
		install_go helm "$HELM4_VERSION" helm.sh/helm/v4/cmd/helm
		install_go helm3 "$HELM3_VERSION" helm.sh/helm/v3/cmd/helm
		;;
	etcd) build_etcd ;;
	kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) build_kube "$w" ;;
	kwok)
		install_go kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
		copy_kwok_manifests
		;;
	helm) install_go helm "$HELM4_VERSION" helm.sh/helm/v4/cmd/helm ;;
	helm3) install_go helm3 "$HELM3_VERSION" helm.sh/helm/v3/cmd/helm ;;
	*) echo "build-tools: unknown tool '$w' (want etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, helm, helm3 or all)" >&2; exit 2 ;;
	esac
done
log "tools ready in $out"
