// Package scrubprocessor removes from a report everything the catalog does not describe, besides
// the metric names and attributes (which filter/catalog and transform/catalog keep to the
// catalog): exemplars (with their filtered attributes, trace and span ids), metric descriptions
// and metadata, units other than the catalog's, point flags, schema URLs, the instrumentation
// scope's name, version and attributes, and dropped-attribute counts.
//
// It runs in the pipeline before the exporter's persistent queue, so none of it is written to
// disk or forwarded to the ingest.
package scrubprocessor // import "otel-usage.local/collector/scrubprocessor"

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
)

// Config maps each catalog metric's name to its unit; every other metric's unit is removed.
type Config struct {
	Units map[string]string `mapstructure:"units"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if len(c.Units) == 0 {
		return errors.New("units must name the catalog's metrics")
	}
	return nil
}

// NewFactory returns the factory of the "scrub" processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType("scrub"),
		func() component.Config { return &Config{} },
		processor.WithMetrics(createMetrics, component.StabilityLevelAlpha),
	)
}

func createMetrics(
	_ context.Context, _ processor.Settings, cfg component.Config, next consumer.Metrics,
) (processor.Metrics, error) {
	return &scrubProcessor{units: cfg.(*Config).Units, next: next}, nil
}

type scrubProcessor struct {
	component.StartFunc
	component.ShutdownFunc
	units map[string]string
	next  consumer.Metrics
}

func (p *scrubProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

func (p *scrubProcessor) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	Scrub(md, p.units)
	return p.next.ConsumeMetrics(ctx, md)
}

// Scrub removes, in place, what the catalog does not describe (see the package comment).
func Scrub(md pmetric.Metrics, units map[string]string) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		rm.SetSchemaUrl("")
		rm.Resource().SetDroppedAttributesCount(0)
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sm := sms.At(j)
			sm.SetSchemaUrl("")
			scope := sm.Scope()
			scope.SetName("")
			scope.SetVersion("")
			scope.Attributes().Clear()
			scope.SetDroppedAttributesCount(0)
			metrics := sm.Metrics()
			for k := 0; k < metrics.Len(); k++ {
				scrubMetric(metrics.At(k), units)
			}
		}
	}
}

func scrubMetric(m pmetric.Metric, units map[string]string) {
	m.SetDescription("")
	m.SetUnit(units[m.Name()]) // "" for a metric the catalog does not list
	m.Metadata().Clear()
	switch m.Type() {
	case pmetric.MetricTypeSum:
		scrubNumberPoints(m.Sum().DataPoints())
	case pmetric.MetricTypeGauge:
		scrubNumberPoints(m.Gauge().DataPoints())
	case pmetric.MetricTypeHistogram:
		points := m.Histogram().DataPoints()
		for i := 0; i < points.Len(); i++ {
			points.At(i).Exemplars().RemoveIf(func(pmetric.Exemplar) bool { return true })
			points.At(i).SetFlags(pmetric.DefaultDataPointFlags)
		}
	case pmetric.MetricTypeExponentialHistogram:
		points := m.ExponentialHistogram().DataPoints()
		for i := 0; i < points.Len(); i++ {
			points.At(i).Exemplars().RemoveIf(func(pmetric.Exemplar) bool { return true })
			points.At(i).SetFlags(pmetric.DefaultDataPointFlags)
		}
	case pmetric.MetricTypeSummary:
		points := m.Summary().DataPoints()
		for i := 0; i < points.Len(); i++ {
			points.At(i).SetFlags(pmetric.DefaultDataPointFlags)
		}
	case pmetric.MetricTypeEmpty:
	}
}

func scrubNumberPoints(points pmetric.NumberDataPointSlice) {
	for i := 0; i < points.Len(); i++ {
		point := points.At(i)
		point.Exemplars().RemoveIf(func(pmetric.Exemplar) bool { return true })
		point.SetFlags(pmetric.DefaultDataPointFlags)
	}
}
