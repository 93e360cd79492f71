package queuecarryoverextension

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"
)

const (
	oldName = "exporter_otlphttp_ingest_metrics"
	newName = "exporter_otlp_http_ingest_metrics"
)

var renames = map[string]string{oldName: newName}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, entry := range entries {
		data, err := os.ReadFile(filepath.Join(dir, entry.Name()))
		if err != nil {
			t.Fatal(err)
		}
		found[entry.Name()] = string(data)
	}
	return found
}

func start(t *testing.T, dir string) {
	t.Helper()
	cfg := &Config{Directory: dir, Renames: renames}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ext, err := NewFactory().Create(context.Background(), extension.Settings{
		ID:                component.MustNewID("queue_carryover"),
		TelemetrySettings: component.TelemetrySettings{Logger: zap.NewNop()},
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), nil); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStartRenamesTheOldQueue(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, oldName), "queued report")
	write(t, filepath.Join(dir, "exporter_other_metrics"), "other")
	start(t, dir)
	want := map[string]string{newName: "queued report", "exporter_other_metrics": "other"}
	if got := files(t, dir); !maps.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

func TestStartWithNothingToCarryOver(t *testing.T) {
	dir := t.TempDir()
	start(t, filepath.Join(dir, "not-made-yet"))
	write(t, filepath.Join(dir, newName), "current")
	start(t, dir)
	if got, want := files(t, dir), map[string]string{newName: "current"}; !maps.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

func TestBothNamesTakenLeavesBothAndSaysSo(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, oldName), "old")
	write(t, filepath.Join(dir, newName), "new")
	moved, err := CarryOver(dir, renames)
	if len(moved) != 0 || err == nil {
		t.Errorf("CarryOver = %v, %v; want nothing moved and an error", moved, err)
	}
	start(t, dir) // logs the error; the gateway still starts
	if got, want := files(t, dir), map[string]string{oldName: "old", newName: "new"}; !maps.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

func TestCarryOverReportsWhatItMoved(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), "1")
	moved, err := CarryOver(dir, map[string]string{"a": "b", "c": "d"})
	if err != nil || !slices.Equal(moved, []string{"a"}) {
		t.Errorf("CarryOver = %v, %v; want [a], nil", moved, err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"good", Config{Directory: "/q", Renames: renames}, true},
		{"no directory", Config{Renames: renames}, false},
		{"no renames", Config{Directory: "/q"}, false},
		{"path", Config{Directory: "/q", Renames: map[string]string{"../x": "y"}}, false},
		{"dot", Config{Directory: "/q", Renames: map[string]string{"x": ".."}}, false},
		{"itself", Config{Directory: "/q", Renames: map[string]string{"x": "x"}}, false},
		{"chain", Config{Directory: "/q", Renames: map[string]string{"x": "y", "y": "z"}}, false},
	}
	for _, c := range cases {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
