// Package kubernetes holds the manifests that run rtcomm-harness load generators on a
// Kubernetes cluster (an Indexed Job of shards started together, a shared results volume, a
// merge Job) and, in its tests, the checks that keep them right: the manifests parse and carry
// the fields that matter, and the distributed demo runs the pods' own command lines as local
// processes against `serve`. docs/DISTRIBUTED.md explains how to use them.
package kubernetes
