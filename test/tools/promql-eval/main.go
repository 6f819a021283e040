// promql-eval evaluates PromQL expressions with Prometheus's own engine against metrics
// scraped by a test. It reads one JSON document on stdin:
//
//	{"scrapes": [{"timeMs": 1700000000000, "labels": {"job": "nodemesh", "instance": "node-a"},
//	              "text": "<Prometheus text exposition>"}],
//	 "queries": [{"id": "p1", "expr": "sum(rate(x[1m]))", "timeMs": ..., "startMs": ..., "stepMs": ...}]}
//
// Each scrape's text is parsed by Prometheus's exposition parser (model/textparse) and
// appended, at the scrape's time, to an in-process TSDB head, with the scrape's target
// labels attached the way a scrape with honor_labels: false attaches them (a scraped
// label that clashes becomes exported_<name>). A query with stepMs is a range query from
// startMs to timeMs (a Grafana graph panel), otherwise an instant query at timeMs (a stat
// or table panel). It writes one JSON line per query on stdout:
//
//	{"id": "p1", "type": "matrix", "series": 2, "sample": "{...} => 1.5", "error": ""}
//
// where series counts the result's series that hold a number (a NaN shows as nothing on
// a Grafana panel), and "labels": true on an instant query adds each series' labels.
//
// Why a program and not promtool: promtool evaluates arbitrary expressions only against a
// running server (promtool query) or as a rules unit test, which needs the expected result
// up front; the test wants to know what each dashboard query returns.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb"
)

type scrape struct {
	TimeMs int64             `json:"timeMs"`
	Labels map[string]string `json:"labels"`
	Text   string            `json:"text"`
}

type query struct {
	ID      string `json:"id"`
	Expr    string `json:"expr"`
	TimeMs  int64  `json:"timeMs"`
	StartMs int64  `json:"startMs"`
	StepMs  int64  `json:"stepMs"`
	// Labels asks for the label sets of an instant query's result (what Grafana's
	// query_result() variables read their options from).
	Labels bool `json:"labels"`
}

type input struct {
	Scrapes []scrape `json:"scrapes"`
	Queries []query  `json:"queries"`
}

type answer struct {
	ID     string              `json:"id"`
	Type   string              `json:"type,omitempty"`
	Series int                 `json:"series"`
	Sample string              `json:"sample,omitempty"`
	Labels []map[string]string `json:"labels,omitempty"`
	Error  string              `json:"error,omitempty"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "promql-eval:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var doc input
	if err := json.NewDecoder(in).Decode(&doc); err != nil {
		return fmt.Errorf("reading the JSON input: %w", err)
	}
	dir, err := os.MkdirTemp("", "promql-eval-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return fmt.Errorf("opening a TSDB in %s: %w", dir, err)
	}
	defer db.Close()

	// Oldest scrape first: the head takes each series' samples in time order.
	sort.SliceStable(doc.Scrapes, func(i, j int) bool { return doc.Scrapes[i].TimeMs < doc.Scrapes[j].TimeMs })
	total := 0
	for i, s := range doc.Scrapes {
		n, err := appendScrape(db, s)
		if err != nil {
			return fmt.Errorf("scrape %d (%v at %d): %w", i, s.Labels, s.TimeMs, err)
		}
		total += n
	}
	fmt.Fprintf(os.Stderr, "promql-eval: %d samples from %d scrapes\n", total, len(doc.Scrapes))

	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:           50_000_000,
		Timeout:              time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               parser.NewParser(parser.Options{}),
	})
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	for _, q := range doc.Queries {
		if err := enc.Encode(evaluate(engine, db, q)); err != nil {
			return err
		}
	}
	return nil
}

// appendScrape parses one exposition and appends its float samples at the scrape's time,
// plus the `up` series a Prometheus scrape writes.
func appendScrape(db *tsdb.DB, s scrape) (int, error) {
	p, err := textparse.New([]byte(s.Text), "text/plain; version=0.0.4", labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil && p == nil {
		return 0, err
	}
	app := db.Appender(context.Background())
	target := labels.FromMap(s.Labels)
	n := 0
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = app.Rollback()
			return n, fmt.Errorf("parsing the exposition: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue // HELP, TYPE, comments; nodemesh exports no native histograms.
		}
		var scraped labels.Labels
		p.Labels(&scraped)
		_, ts, v := p.Series()
		t := s.TimeMs
		if ts != nil {
			t = *ts
		}
		if _, err := app.Append(0, withTarget(scraped, target), t, v); err != nil {
			_ = app.Rollback()
			return n, fmt.Errorf("appending %s: %w", scraped, err)
		}
		n++
	}
	up := labels.NewBuilder(target).Set(labels.MetricName, "up").Labels()
	if _, err := app.Append(0, up, s.TimeMs, 1); err != nil {
		_ = app.Rollback()
		return n, err
	}
	return n, app.Commit()
}

// withTarget attaches the target's labels as Prometheus does without honor_labels.
func withTarget(scraped, target labels.Labels) labels.Labels {
	b := labels.NewBuilder(scraped)
	target.Range(func(l labels.Label) {
		if v := scraped.Get(l.Name); v != "" {
			b.Set("exported_"+l.Name, v)
		}
		b.Set(l.Name, l.Value)
	})
	return b.Labels()
}

func evaluate(engine *promql.Engine, db *tsdb.DB, q query) answer {
	a := answer{ID: q.ID}
	ctx := context.Background()
	var (
		pq  promql.Query
		err error
	)
	end := time.UnixMilli(q.TimeMs)
	if q.StepMs > 0 {
		pq, err = engine.NewRangeQuery(ctx, db, nil, q.Expr, time.UnixMilli(q.StartMs), end, time.Duration(q.StepMs)*time.Millisecond)
	} else {
		pq, err = engine.NewInstantQuery(ctx, db, nil, q.Expr, end)
	}
	if err != nil {
		a.Error = err.Error()
		return a
	}
	defer pq.Close()
	res := pq.Exec(ctx)
	if res.Err != nil {
		a.Error = res.Err.Error()
		return a
	}
	a.Type = string(res.Value.Type())
	switch v := res.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			if !math.IsNaN(s.F) || s.H != nil {
				a.Series++
				if a.Sample == "" {
					a.Sample = fmt.Sprintf("%s => %g", s.Metric, s.F)
				}
				if q.Labels {
					a.Labels = append(a.Labels, s.Metric.Map())
				}
			}
		}
	case promql.Matrix:
		for _, s := range v {
			if points := numericPoints(s); points > 0 {
				a.Series++
				if a.Sample == "" {
					a.Sample = fmt.Sprintf("%s => %d points, last %g", s.Metric, points, s.Floats[len(s.Floats)-1].F)
				}
			}
		}
	case promql.Scalar:
		if !math.IsNaN(v.V) {
			a.Series = 1
			a.Sample = fmt.Sprintf("scalar %g", v.V)
		}
	case promql.String:
		a.Series = 1
		a.Sample = v.V
	}
	return a
}

// numericPoints counts a series' points that are numbers: a NaN (0/0 of a histogram
// quantile over no requests) shows as nothing on a Grafana panel.
func numericPoints(s promql.Series) int {
	n := len(s.Histograms)
	for _, f := range s.Floats {
		if !math.IsNaN(f.F) {
			n++
		}
	}
	return n
}
