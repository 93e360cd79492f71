// Package queuecarryoverextension carries an exporter's persistent queue over a rename.
//
// The file_storage extension keeps each exporter's queue in a file named after the exporter's
// component ID ("exporter_<type>_<name>_<signal>"). Renaming the exporter (as when the deprecated
// type "otlphttp" became "otlp_http") would start an empty queue under the new name and orphan
// the reports waiting in the old file. At start, before any exporter opens its queue, this
// extension renames each old file to its new name, unless a file of the new name already exists:
// then both are left as they are and it logs an error, but the gateway still starts (a public
// endpoint that refuses to start loses more reports than one queue file left aside).
package queuecarryoverextension // import "otel-usage.local/collector/queuecarryoverextension"

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"
)

// Config names the queue directory and the files to rename there (old name: new name).
type Config struct {
	Directory string            `mapstructure:"directory"`
	Renames   map[string]string `mapstructure:"renames"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Directory == "" {
		return errors.New("directory must be set")
	}
	if len(c.Renames) == 0 {
		return errors.New("renames must name at least one file")
	}
	for from, to := range c.Renames {
		for _, name := range []string{from, to} {
			if !plainName(name) {
				return fmt.Errorf("%q is not a plain file name", name)
			}
		}
		if from == to {
			return fmt.Errorf("%q is renamed to itself", from)
		}
		if _, chained := c.Renames[to]; chained {
			return fmt.Errorf("%q is both a new and an old name", to)
		}
	}
	return nil
}

func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`)
}

// NewFactory returns the factory of the "queue_carryover" extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(
		component.MustNewType("queue_carryover"),
		func() component.Config { return &Config{} },
		func(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
			return &carryOver{cfg: cfg.(*Config), logger: set.Logger}, nil
		},
		component.StabilityLevelAlpha,
	)
}

type carryOver struct {
	component.ShutdownFunc
	cfg    *Config
	logger *zap.Logger
}

// Start renames the old queue files. Extensions start before the pipelines' exporters, which
// open their queues when they start.
func (c *carryOver) Start(context.Context, component.Host) error {
	moved, err := CarryOver(c.cfg.Directory, c.cfg.Renames)
	for _, name := range moved {
		c.logger.Info("carried a queue over to its new name",
			zap.String("from", name), zap.String("to", c.cfg.Renames[name]))
	}
	if err != nil {
		c.logger.Error("a queue was not carried over", zap.Error(err))
	}
	return nil
}

// CarryOver renames, in directory, each existing old file to its new name when no file of the
// new name exists. It returns the old names it renamed. A missing directory or old file is not
// an error (nothing to carry over); an old file whose new name is taken is an error, and stays.
func CarryOver(directory string, renames map[string]string) ([]string, error) {
	var moved []string
	var problems []error
	for from, to := range renames {
		oldPath, newPath := filepath.Join(directory, from), filepath.Join(directory, to)
		if _, err := os.Lstat(oldPath); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			problems = append(problems, err)
			continue
		}
		if _, err := os.Lstat(newPath); err == nil {
			problems = append(problems, fmt.Errorf(
				"both %s and %s exist: the reports queued in the first are not carried over; "+
					"stop the gateway, deliver or merge them, then remove it", oldPath, newPath))
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, err)
			continue
		}
		if err := os.Rename(oldPath, newPath); err != nil {
			problems = append(problems, err)
			continue
		}
		moved = append(moved, from)
	}
	return moved, errors.Join(problems...)
}
