package main

import (
	"log/slog"

	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/outcome/spool"
)

// newRecorder opens the spool of [store] spool_dir for a state: every
// sign and check of the library is recorded there (nil: not set).
func newRecorder(cfg *config.Config, source string, log *slog.Logger) (*spool.Recorder, error) {
	return spool.NewRecorder(cfg, source, log)
}
