package main

import (
	"context"
	"fmt"
	"io"

	"github.com/stirgate/stirgate/internal/buildinfo"
)

func init() {
	register("version", "print the build: version, VCS revision, Go release (also --version)", runVersion)
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	i := buildinfo.Get()
	fmt.Fprintf(stdout, "stirgate %s (revision %s, %s)\n", i.Version, i.Revision, i.GoVersion)
	return exitOK
}
