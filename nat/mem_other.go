//go:build !linux

package nat

func allocSlice[T any](n int) []T { return make([]T, n) }
