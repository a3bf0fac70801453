package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/platform/log"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

func pipelineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Manage pipelines (drop: remove a pipeline's slot, publication and bus state)",
	}
	var path string
	drop := &cobra.Command{
		Use:   "drop NAME -c FILE",
		Short: "Remove a stopped pipeline's replication slot, publication and bus state",
		Long: `Remove everything tidegate created for a pipeline: the PostgreSQL replication
slot (so WAL is no longer retained for it), the publication, the bus streams
(pending events, dead letters) and stored progress. Indexes are left alone.
Stop tidegate first. The next run of the pipeline starts from a new snapshot.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			name := args[0]
			for _, pc := range cfg.Pipelines {
				if pc.Name != name {
					continue
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
				defer cancel()
				for _, sc := range cfg.Sources {
					if sc.Name == pc.Source && sc.Postgres != nil {
						if err := postgres.Drop(ctx, *sc.Postgres, pc.Name); err != nil {
							return err
						}
					}
				}
				b, err := bus.Open(ctx, bus.Config{URL: cfg.Bus.URL, DataDir: cfg.DataDir, Logger: log.New(os.Stderr, "warn", "text")})
				if err != nil {
					return err
				}
				defer b.Close()
				if err := b.DeletePipeline(ctx, name); err != nil {
					return err
				}
				st, err := b.State(ctx)
				if err != nil {
					return err
				}
				if err := st.Delete(ctx, "source."+name); err != nil {
					return err
				}
				if _, err := st.DeleteMatching(ctx, postgres.SchemaKeyPrefix(name)+">"); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "dropped pipeline %s: slot, publication, bus streams, progress and schema history removed\n", name)
				return nil
			}
			return fmt.Errorf("pipeline %q is not in %s", name, path)
		},
	}
	drop.Flags().StringVarP(&path, "config", "c", "tidegate.yaml", "configuration file")
	cmd.AddCommand(drop)
	return cmd
}
