// Package switchyard is a userspace virtual switch and NAT for Linux. The
// root package holds no code; see switch/, netns/, ipam/ and cmd/switchyard.
package switchyard
