package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/source/postgres"
)

// pipelineStatus is one pipeline's replication state, as PostgreSQL sees it.
type pipelineStatus struct {
	Pipeline          string              `json:"pipeline"`
	Source            string              `json:"source"`
	SlotName          string              `json:"slot_name"`
	Slot              *postgres.SlotInfo  `json:"slot"` // nil: no such slot
	Publication       string              `json:"publication"`
	PublicationExists bool                `json:"publication_exists"`
	Error             string              `json:"error,omitempty"`
	others            []postgres.SlotInfo // the database's slots no pipeline uses
}

type statusReport struct {
	Pipelines []pipelineStatus `json:"pipelines"`
	// OtherSlots are tidegate-looking slots (pgoutput, tidegate_ prefix) of
	// the configured databases that no configured pipeline uses: left
	// behind by a pipeline removed from the configuration, they retain WAL.
	OtherSlots []postgres.SlotInfo `json:"other_slots"`
}

func statusCmd() *cobra.Command {
	var path string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status -c FILE",
		Short: "Show each pipeline's replication slot (running or not) and slots left behind",
		Long: `Show, for each pipeline of the configuration, its PostgreSQL replication slot:
whether a tidegate streams from it, how much WAL it retains on the database
server, its confirmed position; and tidegate slots of the same databases that
no configured pipeline uses. It reads PostgreSQL only, so it works whether
tidegate runs or not.

A slot of a stopped pipeline keeps WAL on the database server's disk until the
pipeline runs again: start it, or remove it with
  tidegate pipeline drop NAME -c FILE`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			rep := collectStatus(ctx, cfg)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printStatus(cmd.OutOrStdout(), rep, path)
			}
			// Scripts (and monitoring) must not take an unreadable
			// database for a healthy one.
			unknown := 0
			for _, ps := range rep.Pipelines {
				if ps.Error != "" {
					unknown++
				}
			}
			if unknown > 0 {
				return fmt.Errorf("the slots of %d pipeline(s) could not be read (see above)", unknown)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "tidegate.yaml", "configuration file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// collectStatus reads the slots of every database a pipeline captures
// (each once). A database that cannot be reached is reported on its
// pipelines, not fatal.
func collectStatus(ctx context.Context, cfg *config.Config) statusReport {
	sources := map[string]*postgres.Config{}
	for _, sc := range cfg.Sources {
		if sc.Postgres != nil {
			sources[sc.Name] = sc.Postgres
		}
	}
	// Which slots and publications each database is expected to hold.
	byDSN := map[string][]int{}
	rep := statusReport{Pipelines: []pipelineStatus{}, OtherSlots: []postgres.SlotInfo{}}
	for _, pc := range cfg.Pipelines {
		sc, ok := sources[pc.Source]
		if !ok {
			continue // not a PostgreSQL pipeline
		}
		slot, pub := postgres.Names(*sc, pc.Name)
		rep.Pipelines = append(rep.Pipelines, pipelineStatus{Pipeline: pc.Name, Source: pc.Source, SlotName: slot, Publication: pub})
		byDSN[sc.DSN] = append(byDSN[sc.DSN], len(rep.Pipelines)-1)
	}
	for dsn, idx := range byDSN {
		var pubs []string
		used := map[string]bool{}
		for _, i := range idx {
			pubs = append(pubs, rep.Pipelines[i].Publication)
			used[rep.Pipelines[i].SlotName] = true
		}
		slots, existing, err := postgres.DatabaseSlots(ctx, dsn, pubs)
		for _, i := range idx {
			ps := &rep.Pipelines[i]
			if err != nil {
				ps.Error = err.Error()
				continue
			}
			ps.PublicationExists = existing[ps.Publication]
			for j := range slots {
				if slots[j].Name == ps.SlotName {
					ps.Slot = &slots[j]
				}
			}
		}
		for _, s := range slots {
			if !used[s.Name] && postgres.IsTidegateSlot(s) {
				rep.OtherSlots = append(rep.OtherSlots, s)
			}
		}
	}
	return rep
}

func printStatus(w io.Writer, rep statusReport, path string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tSOURCE\tSLOT\tSTATE\tWAL STATUS\tRETAINED WAL\tCONFIRMED LSN\tPUBLICATION")
	var notes []string
	for _, ps := range rep.Pipelines {
		pub := ps.Publication
		if !ps.PublicationExists {
			pub += " (missing)"
		}
		switch {
		case ps.Error != "":
			fmt.Fprintf(tw, "%s\t%s\t%s\tunknown\t-\t-\t-\t-\n", ps.Pipeline, ps.Source, ps.SlotName)
			notes = append(notes, fmt.Sprintf("pipeline %s: %s", ps.Pipeline, ps.Error))
		case ps.Slot == nil:
			fmt.Fprintf(tw, "%s\t%s\t%s\tno slot\t-\t-\t-\t%s\n", ps.Pipeline, ps.Source, ps.SlotName, pub)
		default:
			s := ps.Slot
			state := "stopped"
			if s.Active {
				state = fmt.Sprintf("streaming (pid %d)", s.ActivePID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ps.Pipeline, ps.Source, s.Name, state, s.WALStatus, formatBytes(s.RetainedBytes), s.ConfirmedLSN, pub)
			switch {
			case s.WALStatus == "lost":
				notes = append(notes, fmt.Sprintf("pipeline %s: its slot lost WAL it needed (max_slot_wal_keep_size); the next start follows on_position_lost", ps.Pipeline))
			case !s.Active:
				notes = append(notes, fmt.Sprintf("pipeline %s is stopped and its slot retains %s of WAL on the database server: start tidegate, or remove the pipeline with `tidegate pipeline drop %s -c %s`",
					ps.Pipeline, formatBytes(s.RetainedBytes), ps.Pipeline, path))
			}
		}
	}
	tw.Flush()
	if len(rep.OtherSlots) > 0 {
		fmt.Fprintln(w, "\nSlots no configured pipeline uses (they retain WAL until dropped):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SLOT\tSTATE\tWAL STATUS\tRETAINED WAL\tCONFIRMED LSN")
		for _, s := range rep.OtherSlots {
			state := "stopped"
			if s.Active {
				state = fmt.Sprintf("streaming (pid %d)", s.ActivePID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, state, s.WALStatus, formatBytes(s.RetainedBytes), s.ConfirmedLSN)
			if !s.Active {
				notes = append(notes, fmt.Sprintf("slot %s belongs to no configured pipeline: if its pipeline is gone, drop it in PostgreSQL with SELECT pg_drop_replication_slot('%s')", s.Name, s.Name))
			}
		}
		tw.Flush()
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "note:", n)
		}
	}
}

// formatBytes renders a byte count with a binary unit (1.5 MiB).
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
