package awsenv

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/parley-chat/parley/shared/ttlmap"
)

// SecretReader is the part of Secrets Manager Secrets uses.
type SecretReader interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Secrets reads secrets by name or ARN and keeps each for a while, so a warm function
// reads a channel's llm key about once per TTL, not once a turn.
type Secrets struct {
	client SecretReader
	cache  *ttlmap.Map[string]
}

// NewSecrets returns Secrets over client, keeping values for ttl.
func NewSecrets(client SecretReader, ttl time.Duration) *Secrets {
	return &Secrets{client: client, cache: ttlmap.New[string](ttl)}
}

// Secret implements channel.Secrets.
func (s *Secrets) Secret(ctx context.Context, name string) (string, error) {
	now := time.Now()
	last, fresh, found := s.cache.Get(name, now)
	if fresh {
		return last, nil
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		if found {
			return last, nil // the last known value beats a failed turn
		}
		return "", fmt.Errorf("read secret %s: %w", name, err)
	}
	v := aws.ToString(out.SecretString)
	s.cache.Put(name, v, now)
	return v, nil
}
