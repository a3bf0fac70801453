package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/tidegate/tidegate/internal/admin/adminpb"
	"github.com/tidegate/tidegate/internal/admin/adminpb/adminpbconnect"
	"github.com/tidegate/tidegate/internal/config"
)

// envAdminToken is the environment variable the CLI reads the admin token from.
const envAdminToken = "TIDEGATE_ADMIN_TOKEN"

// adminFlags locate and authenticate to a running tidegate's admin API.
type adminFlags struct {
	addr, token, config string
	json                bool
}

func dlqCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, inspect, replay and discard dead letters (events a sink rejected)",
		Long: `Dead letters are events a sink rejected for good (a mapping conflict, an invalid
value): each is kept in the bus with its error and its original event. These
commands talk to the admin API of the running tidegate.

  tidegate dlq list                      what failed, and why
  tidegate dlq show 12 --pipeline shop   one dead letter with its whole event
  ... fix the cause (the index mapping, the data) ...
  tidegate dlq replay --all              send them to their sink again
  tidegate dlq discard 12 13             drop some for good

A replayed event keeps its version: it cannot overwrite a newer version of its
row. One that fails again goes back to the dead-letter queue.

The admin address comes from --admin, else admin.listen in the configuration
file (-c, default tidegate.yaml when it exists), else 127.0.0.1:7070. The
token comes from --token, else ` + envAdminToken + `, else admin.token in that file.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&af.addr, "admin", "", "admin API address, host:port or URL (default: admin.listen of -c, else 127.0.0.1:7070)")
	pf.StringVar(&af.token, "token", "", "admin token (default: $"+envAdminToken+", else admin.token of -c)")
	pf.StringVarP(&af.config, "config", "c", "tidegate.yaml", "configuration file of the running tidegate (for admin.listen and admin.token)")
	pf.BoolVar(&af.json, "json", false, "print JSON instead of a table")
	cmd.AddCommand(dlqListCmd(&af), dlqShowCmd(&af), dlqBulkCmd(&af, "replay"), dlqBulkCmd(&af, "discard"))
	return cmd
}

// client resolves the admin address and token and returns an API client.
func (af *adminFlags) client(cmd *cobra.Command) (adminpbconnect.AdminServiceClient, string, error) {
	addr, token := af.addr, af.token
	if token == "" {
		token = os.Getenv(envAdminToken)
	}
	if addr == "" {
		explicit := cmd.Flags().Changed("config")
		if _, err := os.Stat(af.config); err == nil || explicit {
			a, err := config.LoadAdmin(af.config)
			if err != nil {
				return nil, "", fmt.Errorf("reading the admin address from %s (or pass --admin): %w", af.config, err)
			}
			if a.Listen == config.AdminOff {
				return nil, "", fmt.Errorf("admin.listen is %q in %s: the admin API is disabled; set admin.listen (e.g. 127.0.0.1:7070) and restart tidegate", config.AdminOff, af.config)
			}
			addr = a.Listen
			if token == "" {
				token = a.Token
			}
		} else {
			addr = config.DefaultAdminListen
		}
	} else if token == "" && cmd.Flags().Changed("config") {
		// --admin with -c FILE: the token of that file, as --token says.
		a, err := config.LoadAdmin(af.config)
		if err != nil {
			return nil, "", fmt.Errorf("reading admin.token from %s (or pass --token): %w", af.config, err)
		}
		token = a.Token
	}
	base, err := adminURL(addr)
	if err != nil {
		return nil, "", err
	}
	var opts []connect.ClientOption
	if token != "" {
		opts = append(opts, connect.WithInterceptors(bearerToken(token)))
	}
	return adminpbconnect.NewAdminServiceClient(http.DefaultClient, base, opts...), base, nil
}

// adminURL turns host:port (as in admin.listen) or a URL into a base URL;
// a listen address on every interface is reached on loopback.
func adminURL(addr string) (string, error) {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("admin address %q: want host:port or a URL (e.g. 127.0.0.1:7070): %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

func bearerToken(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// callError explains a failed call.
func callError(base string, err error) error {
	var opErr *net.OpError
	switch {
	case errors.As(err, &opErr):
		return fmt.Errorf("cannot reach the admin API at %s: %v; is tidegate running? (start it with `tidegate run -c FILE`; "+
			"the address is admin.listen of the file given with -c, or --admin)", base, opErr.Err)
	case connect.CodeOf(err) == connect.CodeUnauthenticated:
		return fmt.Errorf("the admin API at %s refused the call: pass the token of the running tidegate (admin.token) with --token or %s, or -c FILE",
			base, envAdminToken)
	}
	return fmt.Errorf("admin API at %s: %w", base, err)
}

func dlqListCmd(af *adminFlags) *cobra.Command {
	var pipeline, sink, pageToken string
	var limit uint32
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first (a page at a time)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, base, err := af.client(cmd)
			if err != nil {
				return err
			}
			resp, err := c.ListDeadLetters(cmd.Context(), connect.NewRequest(&adminpb.ListDeadLettersRequest{
				Filter:   &adminpb.DeadLetterFilter{Pipeline: pipeline, Sink: sink},
				PageSize: limit, PageToken: pageToken, WithEvents: af.json,
			}))
			if err != nil {
				return callError(base, err)
			}
			m := resp.Msg
			out := cmd.OutOrStdout()
			if af.json {
				list := make([]deadLetterJSON, 0, len(m.GetDeadLetters()))
				for _, d := range m.GetDeadLetters() {
					list = append(list, toJSON(d))
				}
				return printJSON(out, map[string]any{"dead_letters": list, "total": m.GetTotal(), "next_page_token": m.GetNextPageToken()})
			}
			if len(m.GetDeadLetters()) == 0 {
				fmt.Fprintf(out, "no dead letters%s\n", describeFilter(pipeline, sink))
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PIPELINE\tSINK\tSEQ\tTABLE\tOP\tKEY\tVERSION\tATTEMPTS\tFAILED AT\tERROR")
			for _, d := range m.GetDeadLetters() {
				failed := ""
				if d.GetFailedAt() != nil {
					failed = d.GetFailedAt().AsTime().Local().Format(time.DateTime)
				}
				errText := d.GetError()
				if d.GetBodyError() != "" {
					errText += " [" + d.GetBodyError() + "]"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", d.GetPipeline(), d.GetSink(), d.GetSequence(),
					orDash(d.GetTable()), orDash(d.GetOp()), orDash(clip(d.GetKeyJson(), 40)), d.GetVersion(), d.GetAttempts(), failed, clip(oneLine(errText), 100))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "\n%d of %d dead letters%s", len(m.GetDeadLetters()), m.GetTotal(), describeFilter(pipeline, sink))
			if t := m.GetNextPageToken(); t != "" {
				fmt.Fprintf(out, "; next page: --page-token %s", t)
			}
			fmt.Fprintln(out, "\ninspect one: tidegate dlq show SEQ --pipeline PIPELINE; after fixing the cause: tidegate dlq replay --all")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&pipeline, "pipeline", "", "only this pipeline's dead letters")
	f.StringVar(&sink, "sink", "", "only this sink's dead letters")
	f.Uint32Var(&limit, "limit", 50, "at most this many (at most 1000)")
	f.StringVar(&pageToken, "page-token", "", "continue where the previous page ended (it prints the token)")
	return cmd
}

func dlqShowCmd(af *adminFlags) *cobra.Command {
	var pipeline string
	cmd := &cobra.Command{
		Use:   "show SEQ",
		Short: "Show one dead letter with its error and its whole event",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seqs, err := parseSeqs(args)
			if err != nil {
				return err
			}
			c, base, err := af.client(cmd)
			if err != nil {
				return err
			}
			resp, err := c.GetDeadLetter(cmd.Context(), connect.NewRequest(&adminpb.GetDeadLetterRequest{Pipeline: pipeline, Sequence: seqs[0]}))
			if err != nil {
				return callError(base, err)
			}
			d := resp.Msg.GetDeadLetter()
			out := cmd.OutOrStdout()
			if af.json {
				return printJSON(out, toJSON(d))
			}
			tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
			row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
			row("pipeline", d.GetPipeline())
			row("sink", d.GetSink())
			row("sequence", strconv.FormatUint(d.GetSequence(), 10))
			row("event id", d.GetEventId())
			row("table", orDash(d.GetTable()))
			row("op", orDash(d.GetOp()))
			row("version", strconv.FormatUint(d.GetVersion(), 10))
			row("key", orDash(d.GetKeyJson()))
			row("attempts", strconv.FormatUint(uint64(d.GetAttempts()), 10))
			if d.GetFailedAt() != nil {
				row("failed at", d.GetFailedAt().AsTime().Format(time.RFC3339Nano))
			}
			row("subject", d.GetOriginalSubject())
			row("error", d.GetError())
			if d.GetBodyError() != "" {
				row("body", d.GetBodyError()+" (it cannot be replayed; discard it)")
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if ev := d.GetEventJson(); ev != "" {
				var buf bytes.Buffer
				if json.Indent(&buf, []byte(ev), "", "  ") != nil {
					buf.Reset()
					buf.WriteString(ev)
				}
				fmt.Fprintf(out, "event:\n%s\n", buf.String())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "pipeline of the dead letter (required when several are configured)")
	return cmd
}

// dlqBulkCmd is replay or discard.
func dlqBulkCmd(af *adminFlags, verb string) *cobra.Command {
	var pipeline, sink string
	var all bool
	short := map[string]string{
		"replay":  "Send dead letters to their sink again (after fixing the cause)",
		"discard": "Delete dead letters for good",
	}[verb]
	long := map[string]string{
		"replay": `Send dead letters to their sink again: each event is published again on its
pipeline's stream, for its sink only, keeping its version, and removed from the
dead-letter queue once the bus stored it. A replayed event cannot overwrite a
newer version of its row (the sink's versioning refuses it). One that fails
again goes back to the dead-letter queue with its new error.`,
		"discard": `Delete dead letters for good. The events are not applied to their sink.`,
	}[verb]
	cmd := &cobra.Command{
		Use:   verb + " (SEQ... | --all)",
		Short: short,
		Long: long + `

Give sequences (as listed by tidegate dlq list; with --pipeline when several
pipelines are configured), or --all for every dead letter matching --pipeline
and --sink that exists when the command starts.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return fmt.Errorf("give the sequences of the dead letters to %s, or --all (not both)", verb)
			}
			seqs, err := parseSeqs(args)
			if err != nil {
				return err
			}
			c, base, err := af.client(cmd)
			if err != nil {
				return err
			}
			sel := &adminpb.DeadLetterSelection{Filter: &adminpb.DeadLetterFilter{Pipeline: pipeline, Sink: sink}, Sequences: seqs, All: all}
			var done, failedCount uint64
			var failed []*adminpb.ItemError
			if verb == "replay" {
				resp, err := c.ReplayDeadLetters(cmd.Context(), connect.NewRequest(&adminpb.ReplayDeadLettersRequest{Selection: sel}))
				if err != nil {
					return callError(base, err)
				}
				done, failed, failedCount = resp.Msg.GetReplayed(), resp.Msg.GetFailed(), resp.Msg.GetFailedCount()
			} else {
				resp, err := c.DiscardDeadLetters(cmd.Context(), connect.NewRequest(&adminpb.DiscardDeadLettersRequest{Selection: sel}))
				if err != nil {
					return callError(base, err)
				}
				done, failed, failedCount = resp.Msg.GetDiscarded(), resp.Msg.GetFailed(), resp.Msg.GetFailedCount()
			}
			out := cmd.OutOrStdout()
			if af.json {
				type itemErr struct {
					Pipeline string `json:"pipeline"`
					Sequence uint64 `json:"sequence"`
					Error    string `json:"error"`
				}
				list := []itemErr{}
				for _, f := range failed {
					list = append(list, itemErr{f.GetPipeline(), f.GetSequence(), f.GetError()})
				}
				if err := printJSON(out, map[string]any{verb + "ed": done, "failed": list, "failed_count": failedCount}); err != nil {
					return err
				}
			} else {
				past := map[string]string{"replay": "replayed", "discard": "discarded"}[verb]
				fmt.Fprintf(out, "%s %d dead letters%s\n", past, done, describeFilter(pipeline, sink))
				for _, f := range failed {
					fmt.Fprintf(out, "FAIL  %s %d: %s\n", f.GetPipeline(), f.GetSequence(), f.GetError())
				}
				if n := failedCount - uint64(len(failed)); n > 0 {
					fmt.Fprintf(out, "... and %d more failures\n", n)
				}
				if verb == "replay" && done > 0 {
					fmt.Fprintln(out, "events that fail again return to the dead-letter queue: check with tidegate dlq list")
				}
			}
			if failedCount > 0 {
				return fmt.Errorf("%d dead letters could not be %sed (they are still in the dead-letter queue)", failedCount, strings.TrimSuffix(verb, "e"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&all, "all", false, "every dead letter matching --pipeline and --sink")
	f.StringVar(&pipeline, "pipeline", "", "pipeline of the dead letters (required with sequences when several are configured)")
	f.StringVar(&sink, "sink", "", "only this sink's dead letters")
	return cmd
}

func parseSeqs(args []string) ([]uint64, error) {
	var out []uint64
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a dead-letter sequence: use the SEQ column of tidegate dlq list", a)
		}
		out = append(out, n)
	}
	return out, nil
}

// deadLetterJSON is the --json shape: key and event as JSON values.
type deadLetterJSON struct {
	Pipeline        string          `json:"pipeline"`
	Sink            string          `json:"sink"`
	Sequence        uint64          `json:"sequence"`
	EventID         string          `json:"event_id"`
	Table           string          `json:"table,omitempty"`
	Op              string          `json:"op,omitempty"`
	Version         uint64          `json:"version"`
	Key             json.RawMessage `json:"key,omitempty"`
	Error           string          `json:"error"`
	Attempts        uint32          `json:"attempts"`
	FailedAt        string          `json:"failed_at,omitempty"`
	OriginalSubject string          `json:"original_subject,omitempty"`
	SizeBytes       uint32          `json:"size_bytes"`
	BodyError       string          `json:"body_error,omitempty"`
	Event           json.RawMessage `json:"event,omitempty"`
}

func toJSON(d *adminpb.DeadLetter) deadLetterJSON {
	j := deadLetterJSON{
		Pipeline: d.GetPipeline(), Sink: d.GetSink(), Sequence: d.GetSequence(), EventID: d.GetEventId(),
		Table: d.GetTable(), Op: d.GetOp(), Version: d.GetVersion(), Error: d.GetError(), Attempts: d.GetAttempts(),
		OriginalSubject: d.GetOriginalSubject(), SizeBytes: d.GetSizeBytes(), BodyError: d.GetBodyError(),
	}
	if k := d.GetKeyJson(); json.Valid([]byte(k)) {
		j.Key = json.RawMessage(k)
	}
	if e := d.GetEventJson(); json.Valid([]byte(e)) {
		j.Event = json.RawMessage(e)
	}
	if d.GetFailedAt() != nil {
		j.FailedAt = d.GetFailedAt().AsTime().Format(time.RFC3339Nano)
	}
	return j
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func describeFilter(pipeline, sink string) string {
	var parts []string
	if pipeline != "" {
		parts = append(parts, "pipeline "+pipeline)
	}
	if sink != "" {
		parts = append(parts, "sink "+sink)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
