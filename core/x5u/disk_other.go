//go:build !linux

package x5u

import (
	"io/fs"
	"os"
	"time"
)

// lockFile: no flock here (Linux only). The bounds then hold per process only;
// the shared directory is meant for Linux hosts (Kamailio workers).
func lockFile(*os.File) error { return nil }

func accessTime(fi fs.FileInfo) time.Time { return fi.ModTime() }
