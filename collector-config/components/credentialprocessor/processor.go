// Package credentialprocessor narrows a request's client context to the installation credential.
//
// The OTLP receiver (include_metadata: true) puts every request header and the client's address
// into the request's context, and the exporter's persistent queue writes that context to disk.
// This processor keeps one metadata key, the installation credential, and drops the rest, so
// neither the client's address nor any other header is queued or forwarded. A request without
// exactly one non-empty credential is refused: 401 to the client (gRPC Unauthenticated), or 400
// when the credential is too long.
//
// It replaces the batch processor's metadata_keys for this purpose: the batch processor keeps one
// batcher per distinct value for the life of the process, and every installation has its own
// credential.
package credentialprocessor // import "otel-usage.local/collector/credentialprocessor"

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config names the metadata key (an HTTP request header) that carries the credential.
type Config struct {
	MetadataKey string `mapstructure:"metadata_key"`
	// MaxLength bounds the credential's length in bytes.
	MaxLength int `mapstructure:"max_length"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MetadataKey == "" {
		return errors.New("metadata_key must be set")
	}
	if c.MaxLength <= 0 {
		return errors.New("max_length must be positive")
	}
	return nil
}

// NewFactory returns the factory of the "credential" processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType("credential"),
		func() component.Config { return &Config{MaxLength: 256} },
		processor.WithMetrics(createMetrics, component.StabilityLevelAlpha),
	)
}

func createMetrics(
	_ context.Context, _ processor.Settings, cfg component.Config, next consumer.Metrics,
) (processor.Metrics, error) {
	return &credentialProcessor{cfg: cfg.(*Config), next: next}, nil
}

type credentialProcessor struct {
	component.StartFunc
	component.ShutdownFunc
	cfg  *Config
	next consumer.Metrics
}

func (p *credentialProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

func (p *credentialProcessor) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	values := client.FromContext(ctx).Metadata.Get(p.cfg.MetadataKey)
	if len(values) != 1 || values[0] == "" {
		// The OTLP receiver answers an error's gRPC status with its HTTP equivalent.
		return status.Error(codes.Unauthenticated, fmt.Sprintf("the request needs one %s header", p.cfg.MetadataKey))
	}
	if len(values[0]) > p.cfg.MaxLength {
		return status.Error(codes.InvalidArgument, fmt.Sprintf("the %s header is too long", p.cfg.MetadataKey))
	}
	// A fresh client.Info: no address, no other header, no auth data.
	narrowed := client.NewContext(ctx, client.Info{
		Metadata: client.NewMetadata(map[string][]string{p.cfg.MetadataKey: values}),
	})
	return p.next.ConsumeMetrics(narrowed, md)
}
