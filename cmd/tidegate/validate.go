package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidegate/tidegate/internal/platform/log"
	"github.com/tidegate/tidegate/internal/sink/elasticsearch"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

func validateCmd() *cobra.Command {
	var path string
	var offline bool
	cmd := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a configuration file, then check that databases and clusters are ready",
		Long: `Check the configuration file (every problem is reported with file:line and how
to fix it), then connect to every source and sink and check what tidegate
needs: PostgreSQL reachable with wal_level=logical, the REPLICATION privilege,
a free replication slot, every table present with a primary key (or a
configured key); Elasticsearch/OpenSearch reachable, with its flavor and
version. Nothing is changed. Exit status 1 when anything fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ok    configuration %s: %d sources, %d sinks, %d pipelines\n", path, len(cfg.Sources), len(cfg.Sinks), len(cfg.Pipelines))
			if offline {
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			failed := 0
			report := func(ok bool, what, detail string) {
				mark := "ok  "
				if !ok {
					mark = "FAIL"
					failed++
				}
				fmt.Fprintf(out, "%s  %s: %s\n", mark, what, detail)
			}
			for _, pc := range cfg.Pipelines {
				for _, sc := range cfg.Sources {
					if sc.Name != pc.Source || sc.Postgres == nil {
						continue
					}
					for _, c := range postgres.Preflight(ctx, *sc.Postgres, pc.Name) {
						report(c.OK, "source "+sc.Name+": "+c.What, c.Detail)
					}
				}
			}
			for _, sc := range cfg.Sinks {
				es := sc.Elasticsearch
				if es == nil {
					es = sc.OpenSearch
				}
				if es == nil {
					continue
				}
				s, err := elasticsearch.New(ctx, *es, elasticsearch.WithName(sc.Name), elasticsearch.WithLogger(log.New(io.Discard, "error", "text")))
				if err != nil {
					report(false, "sink "+sc.Name, err.Error())
					continue
				}
				info := s.Info()
				report(true, "sink "+sc.Name, fmt.Sprintf("%s %s", info.Flavor, info.Version))
				_ = s.Close()
			}
			if failed > 0 {
				return fmt.Errorf("%d check(s) failed", failed)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "tidegate.yaml", "configuration file (YAML or JSON)")
	cmd.Flags().BoolVar(&offline, "offline", false, "check the file only; do not connect to anything")
	return cmd
}
