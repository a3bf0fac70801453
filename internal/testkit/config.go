package testkit

import "fmt"

// ShopConfig is a tidegate configuration that streams the shop tables of
// dsn into the Elasticsearch at esURL (used by the demo and the bench).
func ShopConfig(header, dataDir, adminAddr, source, pipeline, dsn, esURL string) string {
	return fmt.Sprintf(`# %s
data_dir: %s/data
admin: { listen: %s }
sources:
  - name: %s
    postgres:
      dsn: %q
      tables: [public.customers, public.products, public.orders, public.order_items]
sinks:
  - name: search
    elasticsearch:
      urls: [%s]
      index_settings: { refresh_interval: 1s }
pipelines:
  - name: %s
    source: %s
    sinks: [search]
    snapshot: initial
`, header, dataDir, adminAddr, source, dsn, esURL, pipeline, source)
}
