// Package credentialprocessor narrows a request's client context to the installation credential.
//
// The OTLP receiver (include_metadata: true) puts every request header and the client's address
// into the request's context, and the exporter's persistent queue writes that context to disk.
// This processor keeps one metadata key, the installation credential, and drops the rest, so
// neither the client's address nor any other header is queued or forwarded. A request without
// exactly one non-empty credential is refused: 401 to the client (gRPC Unauthenticated), or 400
// when the credential is too long.
//
// A request whose credential the extension named by `erasures` (credential_headers) has seen
// answered erased by the ingest is refused before the queue: 403 (gRPC PermissionDenied) with
// erased_message (the catalog's `[protocol] erased_message`) as the google.rpc.Status message the
// receiver writes, which the client takes as its erasure and starts over with a new id.
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
	// Erasures names the extension that knows erased credentials (one with an
	// `Erased(credential string) bool` method); none when unset.
	Erasures component.ID `mapstructure:"erasures"`
	// ErasedMessage is the message of the refusal of an erased installation's request.
	ErasedMessage string `mapstructure:"erased_message"`
}

// ErasureRegistry is what the extension named by Erasures offers.
type ErasureRegistry interface {
	Erased(credential string) bool
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MetadataKey == "" {
		return errors.New("metadata_key must be set")
	}
	if c.MaxLength <= 0 {
		return errors.New("max_length must be positive")
	}
	if c.Erasures != (component.ID{}) && c.ErasedMessage == "" {
		return errors.New("erased_message must be set with erasures")
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
	component.ShutdownFunc
	cfg    *Config
	next   consumer.Metrics
	erased ErasureRegistry
}

// Start finds the extension named by Erasures (extensions start before pipelines).
func (p *credentialProcessor) Start(_ context.Context, host component.Host) error {
	if p.cfg.Erasures == (component.ID{}) {
		return nil
	}
	ext, ok := host.GetExtensions()[p.cfg.Erasures]
	if !ok {
		return fmt.Errorf("erasures: no extension %s is configured", p.cfg.Erasures)
	}
	registry, ok := ext.(ErasureRegistry)
	if !ok {
		return fmt.Errorf("erasures: the extension %s does not know erased credentials", p.cfg.Erasures)
	}
	p.erased = registry
	return nil
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
	if p.erased != nil && p.erased.Erased(values[0]) {
		return status.Error(codes.PermissionDenied, p.cfg.ErasedMessage)
	}
	// A fresh client.Info: no address, no other header, no auth data.
	narrowed := client.NewContext(ctx, client.Info{
		Metadata: client.NewMetadata(map[string][]string{p.cfg.MetadataKey: values}),
	})
	return p.next.ConsumeMetrics(narrowed, md)
}
