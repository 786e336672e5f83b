package report

import (
	"html/template"
	"io"
	"time"
)

// auditPage is one self-contained page: inline style, no script, no network assets.
var auditPage = template.Must(template.New("audit").Funcs(template.FuncMap{
	"time":     func(t time.Time) string { return t.Format(time.RFC3339) },
	"word":     resultWord,
	"override": overrideText,
	"dash":     orDash,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>pdguard audit</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1f24; }
table { border-collapse: collapse; margin-bottom: 1.5rem; }
th, td { border: 1px solid #d0d7de; padding: .35rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
ol.timeline { list-style: none; padding-left: 0; border-left: 3px solid #d0d7de; }
ol.timeline li { margin: 0 0 .8rem 0; padding-left: .8rem; }
.result { font-weight: 600; padding: 0 .4rem; border-radius: .3rem; }
.fail { background: #ffebe9; color: #82071e; }
.warn { background: #fff8c5; color: #7d4e00; }
.pass { background: #dafbe1; color: #116329; }
.meta { color: #57606a; font-size: .9rem; }
</style>
</head>
<body>
<h1>pdguard audit</h1>
<p class="meta">Generated {{time .GeneratedAt}}{{if .Since}}, records of the last {{.Since}}{{end}}.</p>
<h2>StatefulSets</h2>
<table id="summary">
<tr><th>StatefulSet</th><th>Open canary</th><th>Last verdict</th><th>Blocked</th><th>Warned</th><th>Last override</th></tr>
{{range .Summaries}}<tr><td>{{.Namespace}}/{{.StatefulSet}}</td><td>{{dash .OpenCanary}}</td><td>{{dash .LastVerdict}}</td><td>{{.Blocked}}</td><td>{{.Warned}}</td><td>{{override .}}</td></tr>
{{end}}</table>
{{range $s := .Summaries}}
<h2>Timeline of {{$s.Namespace}}/{{$s.StatefulSet}}</h2>
<ol class="timeline">
{{range $.Entries}}{{if and (eq .Namespace $s.Namespace) (eq .StatefulSet $s.StatefulSet)}}<li><span class="result {{.Result}}">{{word .}}</span> <strong>{{.Rule}}</strong> <span class="meta">{{time .Time}}{{if .User}} by {{.User}}{{end}}{{if .ToImage}}, {{.FromImage}} to {{.ToImage}}{{end}}</span><br>{{.Message}}</li>
{{end}}{{end}}</ol>
{{end}}
</body>
</html>
`))

func (a Audit) writeHTML(w io.Writer) error { return auditPage.Execute(w, a) }
