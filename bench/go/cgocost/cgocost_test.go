package cgocost

import "testing"

// BenchmarkGoToC: one Go→C call (the binding calls the library ~3 times per request).
func BenchmarkGoToC(b *testing.B) {
	for i := 0; i < b.N; i++ {
		CallC(uintptr(i))
	}
}

// BenchmarkCToGoForeignThread: a C→Go callback on a thread Go did not create, like the
// library's handler threads (after the first call the thread keeps its Go M).
func BenchmarkCToGoForeignThread(b *testing.B) {
	if !CallbacksFromForeignThread(b.N) {
		b.Fatal("pthread_create failed")
	}
}

func TestCrossingsWork(t *testing.T) {
	if CallC(41) != 42 {
		t.Fatal("C call")
	}
	if !CallbacksFromForeignThread(3) {
		t.Fatal("pthread_create failed")
	}
	if sink != 2 {
		t.Fatalf("callback sink %d", sink)
	}
}
