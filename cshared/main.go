// Command libstirgate is the stirgate C library, libstirgate.so.1: built
// with -buildmode=c-shared (make lib), declared by the hand-written
// stirgate.h.
//
// The public C functions live in shim.c, compiled against stirgate.h so
// that the compiler checks the header; they call the sg_* functions that
// export.go exports, which convert C values and call the plain Go of
// api.go. Handles are integers indexing a mutex-guarded table: C never
// holds a Go pointer. Every export runs inside run(), which recovers from
// panics. The last error message is kept per C thread (shim.c), so two
// threads never read each other's errors.
package main

func main() {}
