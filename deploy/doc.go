// SPDX-License-Identifier: Apache-2.0

// Package deploy holds no code: its tests decode the Kubernetes manifests in
// kubernetes/ with the Kubernetes API types and check the systemd unit in
// systemd/. It is a module of its own so k8s.io modules stay out of the root
// module; run it with `go -C deploy test ./...`.
package deploy
