// Command tidegate streams every committed change from databases into
// search indexes and other sinks. See `tidegate --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Set by the build (-ldflags "-X main.version=...").
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tidegate",
		Short: "Stream every committed database change into search indexes and other sinks",
		Long: `tidegate captures every committed change from PostgreSQL (logical replication)
and delivers it to Elasticsearch or OpenSearch through a durable bus (NATS
JetStream, embedded by default), so that each index converges to its tables
and stays there — through restarts, crashes and outages.

Quick start:
  1. Write a configuration file (see examples/postgres-to-elasticsearch.yaml
     and docs/configuration.md).
  2. Check it, and check that the database and the cluster are ready:
       tidegate validate -c tidegate.yaml
  3. Run it (snapshot first, then streaming; Ctrl-C stops cleanly):
       tidegate run -c tidegate.yaml
  4. Watch it: http://127.0.0.1:7070/metrics and /healthz.
  5. Events a sink rejected wait in the dead-letter queue:
       tidegate dlq list, then tidegate dlq replay --all once fixed.
  6. See each pipeline's replication slot, running or not (a stopped one
     retains WAL on the database server):
       tidegate status -c tidegate.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCmd(), validateCmd(), versionCmd(), pipelineCmd(), dlqCmd(), statusCmd())
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the tidegate version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "tidegate %s (commit %s)\n", version, commit)
		},
	}
}
