// Package results writes, reads and merges a load run's results directory: params.json at
// the start, an HdrHistogram interval log flushed every second, and at the end summary.json
// plus one percentile-distribution (.hgrm) file per metric. See loadgen/README.md for the
// formats. A run that dies leaves a directory that Load can still summarize.
package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File names in a results directory and the format identifiers they carry.
const (
	FileParams    = "params.json"    // run parameters, written at the start
	FileIntervals = "intervals.hlog" // HdrHistogram interval log, appended every second
	FileSummary   = "summary.json"   // written last; its presence marks a finalized directory

	FormatParams    = "rtcomm-harness/load-params/v1"
	FormatIntervals = "rtcomm-harness/load-intervals/v1"
	FormatSummary   = "rtcomm-harness/load-summary/v1"
)

// Params are the parameters a run records about itself.
type Params struct {
	HarnessVersion string         `json:"harness_version,omitempty"`
	Target         string         `json:"target,omitempty"`         // what was loaded, e.g. the broker URL
	Rate           float64        `json:"rate"`                     // intended call starts per second (this shard's share)
	Duration       Duration       `json:"duration"`                 // intended length of the run
	Pacer          string         `json:"pacer,omitempty"`          // "constant" or "poisson"
	Seed           uint64         `json:"seed,omitempty"`           // seed of a random pacer
	Shard          string         `json:"shard,omitempty"`          // "i/N" when the run is one of N shards
	LateThreshold  Duration       `json:"late_threshold,omitempty"` // lateness that counts as a late start
	SLO            string         `json:"slo,omitempty"`            // the --slo spec; judged in the summary
	Extra          map[string]any `json:"extra,omitempty"`          // anything else worth keeping (scenario mix, ...)
}

// Duration is a time.Duration that reads and writes JSON as Go syntax, e.g. "1m30s".
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string, or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var ns int64
		if err2 := json.Unmarshal(b, &ns); err2 != nil {
			return fmt.Errorf("duration: want a string like \"30s\": %w", err)
		}
		*d = Duration(ns)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// paramsDoc is the content of params.json and of the interval log's Params comment.
type paramsDoc struct {
	Format string    `json:"format"`
	Start  time.Time `json:"start"`
	Params Params    `json:"params"`
}

func decodeParamsDoc(b []byte) (paramsDoc, error) {
	var doc paramsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return doc, err
	}
	if doc.Format != FormatParams {
		return doc, fmt.Errorf("unsupported params format %q (want %q)", doc.Format, FormatParams)
	}
	return doc, nil
}

// marshalJSON encodes v without HTML escaping, so thresholds read "setup.p99<100ms", not
// "setup.p99\u003c100ms"; indent gives the human-friendly form used for files.
func marshalJSON(v any, indent bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil // ends in a newline
}

// writeFileAtomic replaces path with data so that a crash leaves the old file or the new one,
// never a torn one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
