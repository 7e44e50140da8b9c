// Package proc builds and runs the processes that tests and benchmarks drive — the
// Lambda bootstraps, the CLI, the emulators, aws-lambda-rie — on free loopback ports,
// each in its own process group and dying with the test binary.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ModuleRoot is the folder holding go.mod, found upward from the working directory.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("go.mod not found above " + wd)
		}
	}
}

// GoBuild runs `go build flags -o out pkg` in dir (the module root when empty) with
// this process's environment plus env.
func GoBuild(ctx context.Context, dir, pkg, out string, flags []string, env ...string) error {
	if dir == "" {
		root, err := ModuleRoot()
		if err != nil {
			return err
		}
		dir = root
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build %s: the go command is not on PATH: %w", pkg, err)
	}
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return nil
}

// Spec is what to start.
type Spec struct {
	Name string // for errors: "DynamoDB Local", "parley dev (inbound)"
	Bin  string
	Args []string
	Env  []string // exactly this environment; nil: this process's
	Dir  string
	// Log is a file the output (stdout and stderr) is appended to, kept across
	// restarts; without it the output is kept in memory. Either way Output reads it.
	Log string
	// Output, when set, takes the output instead (os.Stderr, say); Output reads nothing.
	Output io.Writer
}

// Proc is a started process.
type Proc struct {
	Spec
	cmd  *exec.Cmd
	mem  *Buffer
	done chan struct{}
	err  error // from Wait, set before done is closed
}

// Start starts s in its own process group (Kill takes its children too), killed when
// the test binary dies.
func Start(s Spec) (*Proc, error) {
	p := &Proc{Spec: s, done: make(chan struct{})}
	cmd := exec.Command(s.Bin, s.Args...)
	cmd.Env, cmd.Dir = s.Env, s.Dir
	switch {
	case s.Output != nil:
		cmd.Stdout, cmd.Stderr = s.Output, s.Output
	case s.Log != "":
		f, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child holds its own copy
		cmd.Stdout, cmd.Stderr = f, f
	default:
		p.mem = new(Buffer)
		cmd.Stdout, cmd.Stderr = p.mem, p.mem
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name(), err)
	}
	p.cmd = cmd
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *Proc) name() string {
	if p.Name != "" {
		return p.Name
	}
	return filepath.Base(p.Bin)
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Err is how the process ended (nil for exit 0); valid once Exited is closed.
func (p *Proc) Err() error { return p.err }

// ExitCode is the exit code, -1 when killed by a signal; valid once Exited is closed.
func (p *Proc) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// Output is what the process wrote so far, from its log file or from memory.
func (p *Proc) Output() string {
	switch {
	case p.mem != nil:
		return p.mem.String()
	case p.Log != "":
		b, _ := os.ReadFile(p.Log)
		return string(b)
	}
	return ""
}

// Signal sends sig to the process alone (its children are not signalled).
func (p *Proc) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL to the process group, as a crash or Lambda's freeze-and-discard
// ends it, and waits for the process to go.
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to shut down (SIGTERM) and kills its group after grace.
func (p *Proc) Stop(grace time.Duration) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// WaitHTTP waits until url answers HTTP at all; it fails when the process exits first,
// with the end of its output, or when ctx ends.
func (p *Proc) WaitHTTP(ctx context.Context, url string) error {
	return p.wait(ctx, url, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})
}

// WaitListen waits until addr (host:port) accepts TCP connections, as WaitHTTP.
func (p *Proc) WaitListen(ctx context.Context, addr string) error {
	return p.wait(ctx, addr, func(ctx context.Context) bool {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (p *Proc) wait(ctx context.Context, where string, ready func(context.Context) bool) error {
	for !ready(ctx) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it answered on %s (%v):\n%s", p.name(), where, p.err, Tail(p.Output(), 2000))
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer on %s: %w\n%s", p.name(), where, ctx.Err(), Tail(p.Output(), 2000))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Tail is the last n bytes of s, cut at a line start where there is one.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return "…\n" + s
}

// FreePort is a loopback port nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is "127.0.0.1:port" of a FreePort.
func FreeAddr() (string, error) {
	port, err := FreePort()
	return "127.0.0.1:" + strconv.Itoa(port), err
}

// Buffer collects output from concurrent writers (a process's, a logger's).
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
