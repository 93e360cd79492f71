package scrubprocessor

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
)

var units = map[string]string{"printernizer.jobs": "{job}", "printernizer.printers": "{printer}"}

func addExemplar(exemplars pmetric.ExemplarSlice) {
	e := exemplars.AppendEmpty()
	e.SetIntValue(1)
	e.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	e.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	e.FilteredAttributes().PutStr("file.name", "benchy.3mf")
}

// report is a report with everything the scrub removes, and what it keeps.
func report() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.SetSchemaUrl("https://example.com/schema")
	rm.Resource().Attributes().PutStr("service.name", "printernizer")
	rm.Resource().SetDroppedAttributesCount(3)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.SetSchemaUrl("https://example.com/scope-schema")
	sm.Scope().SetName("otel_usage")
	sm.Scope().SetVersion("0.1.0+kitchen-pi")
	sm.Scope().Attributes().PutStr("code.filepath", "/home/anna/app.py")
	sm.Scope().SetDroppedAttributesCount(2)

	jobs := sm.Metrics().AppendEmpty()
	jobs.SetName("printernizer.jobs")
	jobs.SetDescription("jobs of anna's printer farm")
	jobs.SetUnit("{anna}")
	jobs.Metadata().PutStr("owner", "anna")
	sum := jobs.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.SetIsMonotonic(true)
	point := sum.DataPoints().AppendEmpty()
	point.Attributes().PutStr("job.status", "completed")
	point.SetStartTimestamp(100)
	point.SetTimestamp(200)
	point.SetIntValue(3)
	point.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	addExemplar(point.Exemplars())

	printers := sm.Metrics().AppendEmpty()
	printers.SetName("printernizer.printers")
	printers.SetDescription("printers")
	gaugePoint := printers.SetEmptyGauge().DataPoints().AppendEmpty()
	gaugePoint.SetIntValue(2)
	addExemplar(gaugePoint.Exemplars())

	unknown := sm.Metrics().AppendEmpty()
	unknown.SetName("printernizer.file.names")
	unknown.SetUnit("{file}")
	histogramPoint := unknown.SetEmptyHistogram().DataPoints().AppendEmpty()
	addExemplar(histogramPoint.Exemplars())
	return md
}

// expected is report() as the scrub leaves it, built from scratch.
func expected() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "printernizer")
	sm := rm.ScopeMetrics().AppendEmpty()

	jobs := sm.Metrics().AppendEmpty()
	jobs.SetName("printernizer.jobs")
	jobs.SetUnit("{job}")
	sum := jobs.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	sum.SetIsMonotonic(true)
	point := sum.DataPoints().AppendEmpty()
	point.Attributes().PutStr("job.status", "completed")
	point.SetStartTimestamp(100)
	point.SetTimestamp(200)
	point.SetIntValue(3)

	printers := sm.Metrics().AppendEmpty()
	printers.SetName("printernizer.printers")
	printers.SetUnit("{printer}")
	printers.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(2)

	unknown := sm.Metrics().AppendEmpty()
	unknown.SetName("printernizer.file.names")
	unknown.SetEmptyHistogram().DataPoints().AppendEmpty()
	return md
}

func protobuf(t *testing.T, md pmetric.Metrics) string {
	t.Helper()
	data, err := (&pmetric.ProtoMarshaler{}).MarshalMetrics(md)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func json(t *testing.T, md pmetric.Metrics) string {
	t.Helper()
	data, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestScrubLeavesOnlyWhatTheCatalogDescribes(t *testing.T) {
	md := report()
	Scrub(md, units)
	if protobuf(t, md) != protobuf(t, expected()) {
		t.Errorf("scrubbed:\n%s\nwant:\n%s", json(t, md), json(t, expected()))
	}
}

func TestProcessorScrubsBeforeTheNextConsumer(t *testing.T) {
	var got []pmetric.Metrics
	next, err := consumer.NewMetrics(func(_ context.Context, md pmetric.Metrics) error {
		got = append(got, md)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Units = units
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := createMetrics(context.Background(), processor.Settings{}, cfg, next)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Capabilities().MutatesData {
		t.Errorf("the processor changes data and must say so")
	}
	if err := p.ConsumeMetrics(context.Background(), report()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || protobuf(t, got[0]) != protobuf(t, expected()) {
		t.Errorf("the next consumer got %d reports, want 1 scrubbed", len(got))
	}
}

func TestConfigNeedsUnits(t *testing.T) {
	if err := (&Config{}).Validate(); err == nil {
		t.Errorf("Validate accepted a config without units")
	}
}
