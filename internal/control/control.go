package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	// CommandSnapshot asks for a Snapshot.
	CommandSnapshot = "snapshot"
	// CommandInitiate asks the IKE engine to establish the connection
	// named in Request.Name and waits for the outcome.
	CommandInitiate = "initiate"
	// CommandTerminate asks the IKE engine to delete the connection's
	// IKE SAs (and their Child SAs) and waits for the peer's answer.
	CommandTerminate = "terminate"
	// CommandRekey asks the IKE engine to rekey now: Request.Name is a
	// connection (its IKE SAs are rekeyed, the Child SAs move along) or
	// "CONNECTION/CHILD" (that child's Child SAs are rekeyed), and the
	// answer comes once the CREATE_CHILD_SA exchanges are done.
	CommandRekey = "rekey"

	maxRequest = 4 << 10 // a request is one short JSON line
	ioTimeout  = 5 * time.Second
	// ActionTimeout bounds an initiate or terminate: IKE's retransmission
	// schedule gives up within it.
	ActionTimeout = 30 * time.Second
)

// Request is what a client sends.
type Request struct {
	Command string `json:"command"`
	// Name is the connection an action applies to.
	Name string `json:"name,omitempty"`
}

// Action carries out a command on a named object (a connection) and says
// what it did.
type Action func(ctx context.Context, name string) (string, error)

// Response is what the server answers: an error or a snapshot.
type Response struct {
	Error    string    `json:"error,omitempty"`
	Snapshot *Snapshot `json:"snapshot,omitempty"`
	// Result is an action's one-line outcome.
	Result string `json:"result,omitempty"`
}

// Server answers control requests on a Unix socket.
type Server struct {
	ln       net.Listener
	path     string
	snapshot func() *Snapshot
	log      *slog.Logger
	wg       sync.WaitGroup
	once     sync.Once

	mu      sync.Mutex
	actions map[string]Action
	ctx     context.Context
	cancel  context.CancelFunc
}

// InUse reports whether a daemon answers on the socket at path.
func InUse(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Listen creates the socket at path (its directory too) and serves
// requests with snapshot until Close. A stale socket left by a daemon that
// died is replaced; one that still answers means another daemon owns it.
func Listen(path string, snapshot func() *Snapshot, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if InUse(path) {
			return nil, fmt.Errorf("control: %s is in use by a running daemon", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: remove stale socket: %w", err)
		}
	}
	// The socket is created with the umask applied; tighten it at once.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	s := &Server{ln: ln, path: path, snapshot: snapshot, log: log, actions: map[string]Action{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Handle registers f for command; requests for it carry a Name.
func (s *Server) Handle(command string, f Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions[command] = f
}

func (s *Server) action(command string) Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actions[command]
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("control: accept", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	r := bufio.NewReader(io.LimitReader(c, maxRequest))
	line, err := r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return
	}
	var resp Response
	if req, err := decodeRequest(line); err != nil {
		resp.Error = err.Error()
	} else {
		switch f := s.action(req.Command); {
		case req.Command == CommandSnapshot:
			resp.Snapshot = s.snapshot()
		case f != nil:
			// Actions wait on the network: give them their own, longer
			// deadline, and end them when the server closes.
			c.SetDeadline(time.Now().Add(ActionTimeout + ioTimeout))
			ctx, cancel := context.WithTimeout(s.ctx, ActionTimeout)
			res, err := f(ctx, req.Name)
			cancel()
			resp.Result = res
			if err != nil {
				resp.Error = err.Error()
			}
		default:
			resp.Error = fmt.Sprintf("unknown command %q", req.Command)
		}
	}
	if err := json.NewEncoder(c).Encode(&resp); err != nil {
		s.log.Debug("control: write", "err", err)
	}
}

// decodeRequest reads one request line.
func decodeRequest(line []byte) (Request, error) {
	var req Request
	if len(line) > maxRequest {
		return req, errors.New("bad request: too long")
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return req, fmt.Errorf("bad request: %w", err)
	}
	return req, nil
}

// Close stops serving, waits for requests in progress and removes the
// socket. It is idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
		os.Remove(s.path)
	})
	return err
}

// Query asks the daemon at path for a snapshot.
func Query(path string) (*Snapshot, error) {
	c, err := net.DialTimeout("unix", path, ioTimeout)
	if err != nil {
		return nil, fmt.Errorf("control: is the daemon running? %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if err := json.NewEncoder(c).Encode(Request{Command: CommandSnapshot}); err != nil {
		return nil, fmt.Errorf("control: send: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control: read: %w", err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("control: daemon: %s", resp.Error)
	}
	if resp.Snapshot == nil {
		return nil, errors.New("control: daemon sent no snapshot")
	}
	return resp.Snapshot, nil
}

// Do asks the daemon at path to carry out command on name (an initiate or
// terminate) and returns its one-line result.
func Do(path, command, name string) (string, error) {
	c, err := net.DialTimeout("unix", path, ioTimeout)
	if err != nil {
		return "", fmt.Errorf("control: is the daemon running? %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ActionTimeout + 2*ioTimeout))
	if err := json.NewEncoder(c).Encode(Request{Command: command, Name: name}); err != nil {
		return "", fmt.Errorf("control: send: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return "", fmt.Errorf("control: read: %w", err)
	}
	if resp.Error != "" {
		return resp.Result, fmt.Errorf("%s %s: %s", command, name, resp.Error)
	}
	return resp.Result, nil
}
