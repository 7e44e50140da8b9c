package awsenv

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// SecretReader is the part of Secrets Manager Secrets uses.
type SecretReader interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Secrets reads secrets by name or ARN and keeps each for a while, so a warm function
// reads a channel's llm key about once per TTL, not once a turn.
type Secrets struct {
	client SecretReader
	ttl    time.Duration
	mu     sync.Mutex
	cache  map[string]secret
}

type secret struct {
	value string
	until time.Time
}

// NewSecrets returns Secrets over client, keeping values for ttl.
func NewSecrets(client SecretReader, ttl time.Duration) *Secrets {
	return &Secrets{client: client, ttl: ttl, cache: map[string]secret{}}
}

// Secret implements channel.Secrets.
func (s *Secrets) Secret(ctx context.Context, name string) (string, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.cache[name]
	s.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.value, nil
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		if ok {
			return c.value, nil // the last known value beats a failed turn
		}
		return "", fmt.Errorf("read secret %s: %w", name, err)
	}
	v := aws.ToString(out.SecretString)
	s.mu.Lock()
	s.cache[name] = secret{v, now.Add(s.ttl)}
	s.mu.Unlock()
	return v, nil
}
