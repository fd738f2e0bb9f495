package spec

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestHasSpecial: the eight-byte test finds a quote, a backslash or a control character at
// every position, next to every other byte value, and nothing else.
func TestHasSpecial(t *testing.T) {
	t.Parallel()
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', 0x7f, 0x80, 0xff, ' ', '!', '#', '[', ']'} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				want := strSpecial[c] || strSpecial[fill]
				if got := hasSpecial(binary.LittleEndian.Uint64(w[:])); got != want {
					t.Fatalf("%q: expected %v, actual %v", w, want, got)
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		x := r.Uint64()
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], x)
		want := false
		for _, c := range w {
			want = want || strSpecial[c]
		}
		if got := hasSpecial(x); got != want {
			t.Fatalf("%q: expected %v, actual %v", w, want, got)
		}
	}
}
