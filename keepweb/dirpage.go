package keepweb

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
)

// dirPage is the HTML of a directory listing. html/template escapes
// every name; each link starts with "./" so that no name (such as
// "javascript:x" or "//host") can be read as a scheme or a host.
var dirPage = template.Must(template.New("dir").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em;word-break:break-all}
table{border-collapse:collapse}
td,th{padding:.25em 1em;text-align:left}
tr:nth-child(even){background:#f4f4f4}
td.size{text-align:right;font-variant-numeric:tabular-nums}
a.zip{display:inline-block;margin:.5em 0 1em}
</style></head>
<body>
<h1>{{.Title}}</h1>
<a class="zip" href="?download=zip" download>Download all as zip</a> ({{.Files}} files, {{.Total}})
<table>
<tr><th>Name</th><th>Size</th></tr>
{{if .Parent}}<tr><td><a href="../">../</a></td><td></td></tr>
{{end}}{{range .Entries}}<tr><td><a href="{{.Href}}">{{.Name}}</a></td><td class="size"{{if .Bytes}} title="{{.Bytes}} bytes"{{end}}>{{.Size}}</td></tr>
{{end}}</table>
</body></html>
`))

// pageEntry is one row of a directory page.
type pageEntry struct {
	Name, Href, Size, Bytes string
}

// serveDir answers GET or HEAD for directory dir with its page.
func (h *Handler) serveDir(w http.ResponseWriter, r *http.Request, c *collection, dir string) {
	files, _, _ := c.tree.walk(dir)
	var total int64
	for _, f := range files {
		total += f.Size()
	}
	title := "c=" + c.id + "/"
	if dir != "" {
		title += dir + "/"
	}
	data := struct {
		Title   string
		Parent  bool
		Files   int
		Total   string
		Entries []pageEntry
	}{Title: title, Parent: dir != "", Files: len(files), Total: humanSize(total)}
	for _, e := range c.tree.dirs[dir] {
		pe := pageEntry{Name: e.name, Href: "./" + url.PathEscape(e.name), Size: "-"}
		if e.dir {
			pe.Name += "/"
			pe.Href += "/"
		} else {
			pe.Size = humanSize(e.file.Size())
			pe.Bytes = strconv.FormatInt(e.file.Size(), 10)
		}
		data.Entries = append(data.Entries, pe)
	}
	var b bytes.Buffer
	if err := dirPage.Execute(&b, data); err != nil {
		httpError(w, fmt.Errorf("writing the page of %s: %w", title, err))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	hdr.Set("Cache-Control", "private, no-cache")
	hdr.Set("Content-Length", strconv.Itoa(b.Len()))
	if r.Method == http.MethodGet {
		w.Write(b.Bytes())
	}
}

// humanSize formats n bytes for people: "512 B", "1.5 KiB", "64.0 MiB".
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return ""
}
