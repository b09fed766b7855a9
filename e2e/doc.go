// Package e2e holds end-to-end tests that run switchyard's engines between
// real network namespaces. It has no code of its own; run its tests as root.
package e2e
