/// The UI's stylesheet and script, shipped in the binary. The CSS is inlined into each page; the
/// script is served from `/ui/app.js` so the Content-Security-Policy can forbid inline scripts.
enum Assets {
    static let css = #"""
:root{
  --bg:#f7f7f8;--panel:#ffffff;--panel-2:#f2f2f4;--border:#e4e4e8;--text:#18181b;--muted:#6b6b76;--faint:#9a9aa5;
  --accent:#4f46e5;--accent-soft:#eef0ff;--ok:#15803d;--ok-soft:#e8f6ee;--err:#dc2626;--err-soft:#fdecec;--warn:#b45309;
  --bar:#c7c9d6;--bar-llm:#6366f1;--shadow:0 1px 2px rgba(16,16,24,.05),0 1px 1px rgba(16,16,24,.03);
  --mono:ui-monospace,"SF Mono","JetBrains Mono","DejaVu Sans Mono",Menlo,Consolas,monospace;
  color-scheme:light;
}
@media (prefers-color-scheme:dark){:root:not([data-theme=light]){
  --bg:#0f0f12;--panel:#17171b;--panel-2:#1e1e24;--border:#2a2a31;--text:#ececf1;--muted:#9d9daa;--faint:#6c6c78;
  --accent:#8b8cf8;--accent-soft:#23234a;--ok:#4ade80;--ok-soft:#12301f;--err:#f87171;--err-soft:#3a1717;--warn:#fbbf24;
  --bar:#3c3d4a;--bar-llm:#818cf8;--shadow:none;color-scheme:dark;}}
:root[data-theme=dark]{
  --bg:#0f0f12;--panel:#17171b;--panel-2:#1e1e24;--border:#2a2a31;--text:#ececf1;--muted:#9d9daa;--faint:#6c6c78;
  --accent:#8b8cf8;--accent-soft:#23234a;--ok:#4ade80;--ok-soft:#12301f;--err:#f87171;--err-soft:#3a1717;--warn:#fbbf24;
  --bar:#3c3d4a;--bar-llm:#818cf8;--shadow:none;color-scheme:dark;}
*{box-sizing:border-box}
html,body{margin:0;padding:0}
body{background:var(--bg);color:var(--text);font:14px/1.5 Inter,system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","DejaVu Sans",sans-serif;-webkit-font-smoothing:antialiased}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
code,.mono{font-family:var(--mono);font-size:12.5px}
.topbar{position:sticky;top:0;z-index:10;display:flex;align-items:center;gap:28px;padding:0 28px;height:54px;background:var(--panel);border-bottom:1px solid var(--border)}
.brand{display:flex;align-items:center;gap:9px;font-weight:650;font-size:15px;color:var(--text);letter-spacing:-.01em}
.brand:hover{text-decoration:none}
.logo{width:22px;height:22px;border-radius:6px;background:linear-gradient(135deg,var(--accent),#a855f7);display:inline-block}
.nav{display:flex;gap:4px;flex:1}
.nav a{color:var(--muted);padding:6px 11px;border-radius:7px;font-weight:500}
.nav a:hover{background:var(--panel-2);color:var(--text);text-decoration:none}
.nav a.active{color:var(--text);background:var(--panel-2)}
.topbar .right{display:flex;align-items:center;gap:12px;color:var(--muted);font-size:13px}
.btn-ghost{background:none;border:1px solid var(--border);color:var(--muted);border-radius:7px;padding:5px 10px;font:inherit;font-size:13px;cursor:pointer}
.btn-ghost:hover{color:var(--text);background:var(--panel-2)}
main{max-width:1320px;margin:0 auto;padding:26px 28px 60px}
h1{font-size:21px;font-weight:650;letter-spacing:-.015em;margin:0}
h2{font-size:15px;font-weight:600;margin:0 0 12px}
h3{font-size:13px;font-weight:600;margin:18px 0 8px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.page-head{display:flex;align-items:flex-end;justify-content:space-between;gap:16px;margin-bottom:20px;flex-wrap:wrap}
.page-head .sub{color:var(--muted);margin-top:4px}
.page-head>div:first-child{flex:1;min-width:0}
td .name{overflow-wrap:anywhere}
.crumbs{color:var(--muted);font-size:13px;margin-bottom:6px}
.crumbs a{color:var(--muted)}
.card{background:var(--panel);border:1px solid var(--border);border-radius:12px;box-shadow:var(--shadow)}
.card.pad{padding:18px 20px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-bottom:16px}
.kpi{padding:14px 16px}
.kpi .label{color:var(--muted);font-size:12.5px;font-weight:500}
.kpi .value{font-size:24px;font-weight:650;letter-spacing:-.02em;margin-top:2px;font-variant-numeric:tabular-nums}
.kpi .hint{color:var(--faint);font-size:12px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:16px;margin-bottom:16px}
.chart-card{padding:16px 18px 10px}
.chart-card .head{display:flex;justify-content:space-between;align-items:baseline}
.chart-card .head .total{color:var(--muted);font-size:13px;font-variant-numeric:tabular-nums}
svg.chart{width:100%;height:auto;display:block}
svg.chart text{fill:var(--faint);font-size:11px;font-family:inherit}
svg.chart .grid{stroke:var(--border);stroke-width:1}
svg.chart .line{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
svg.chart .area{opacity:.08}
svg.chart .dot{opacity:0}
svg.chart .dot:hover{opacity:1}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;font-size:12.5px;color:var(--muted);margin:6px 0 4px}
.legend>span{max-width:260px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.legend .sw{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:6px;vertical-align:-1px}
.seg{display:inline-flex;background:var(--panel-2);border:1px solid var(--border);border-radius:8px;padding:2px}
.seg a{padding:4px 11px;border-radius:6px;color:var(--muted);font-size:13px;font-weight:500}
.seg a:hover{text-decoration:none;color:var(--text)}
.seg a.on{background:var(--panel);color:var(--text);box-shadow:var(--shadow)}
.table-wrap{overflow-x:auto}
table.data{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
table.data th{text-align:left;font-weight:500;color:var(--muted);font-size:12.5px;padding:10px 14px;border-bottom:1px solid var(--border);white-space:nowrap;background:var(--panel)}
table.data td{padding:10px 14px;border-bottom:1px solid var(--border);vertical-align:top}
table.data tr:last-child td{border-bottom:none}
table.data tbody tr:hover td{background:var(--panel-2)}
table.data td.num,table.data th.num{text-align:right;white-space:nowrap}
table.data td.nowrap{white-space:nowrap}
td .name{font-weight:550;color:var(--text)}
td .sub{color:var(--faint);font-size:12px}
.pill{display:inline-block;max-width:220px;overflow:hidden;text-overflow:ellipsis;vertical-align:middle;padding:1px 8px;border-radius:999px;background:var(--panel-2);border:1px solid var(--border);font-size:12px;color:var(--muted);white-space:nowrap;margin:1px 2px 1px 0}
.badge{display:inline-flex;align-items:center;gap:5px;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:550;white-space:nowrap}
.badge::before{content:"";width:6px;height:6px;border-radius:50%;background:currentColor}
.badge.ok{color:var(--ok);background:var(--ok-soft)}
.badge.error{color:var(--err);background:var(--err-soft)}
.badge.neutral{color:var(--muted);background:var(--panel-2)}
.filters{padding:14px 16px;margin-bottom:14px}
.filters .row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-end}
.field{display:flex;flex-direction:column;gap:4px;min-width:120px}
.field label{font-size:12px;color:var(--muted);font-weight:500}
.field.grow{flex:1;min-width:220px}
select{max-width:240px}
input[type=text],input[type=number],input[type=password],select{height:34px;border:1px solid var(--border);background:var(--panel);color:var(--text);border-radius:8px;padding:0 10px;font:inherit;font-size:13.5px;min-width:0}
input:focus,select:focus{outline:2px solid var(--accent-soft);border-color:var(--accent)}
.btn{height:34px;border:1px solid var(--accent);background:var(--accent);color:#fff;border-radius:8px;padding:0 16px;font:inherit;font-weight:550;font-size:13.5px;cursor:pointer}
.btn:hover{filter:brightness(1.08)}
.btn.secondary{background:var(--panel);color:var(--text);border-color:var(--border);display:inline-flex;align-items:center}
.btn.secondary:hover{text-decoration:none;background:var(--panel-2)}
details.more{margin-top:10px}
details.more summary{cursor:pointer;color:var(--muted);font-size:13px}
details.more .row{margin-top:10px}
.toolbar{display:flex;justify-content:space-between;align-items:center;margin:4px 2px 10px;color:var(--muted);font-size:13px;gap:10px;flex-wrap:wrap}
.toolbar .links{display:flex;gap:12px}
.pager{display:flex;justify-content:flex-end;gap:8px;padding:12px 14px;border-top:1px solid var(--border)}
.empty{padding:48px 20px;text-align:center;color:var(--muted)}
.empty strong{display:block;color:var(--text);font-size:15px;margin-bottom:4px}
.stats{display:flex;flex-wrap:wrap;gap:8px 22px;margin-top:10px;color:var(--muted);font-size:13px}
.stats b{color:var(--text);font-weight:600;font-variant-numeric:tabular-nums}
.split{display:grid;grid-template-columns:minmax(0,1.15fr) minmax(0,1fr);gap:16px;align-items:start}
@media (max-width:1000px){.split{grid-template-columns:1fr}.grid2{grid-template-columns:1fr}}
.wf-head,.wf-row{display:grid;grid-template-columns:minmax(160px,38%) 1fr 72px;gap:10px;align-items:center;padding:0 14px}
.wf-head{height:34px;border-bottom:1px solid var(--border);color:var(--muted);font-size:12px}
.wf-row{height:34px;border-bottom:1px solid var(--border);color:var(--text);cursor:pointer}
.wf-row:hover{background:var(--panel-2);text-decoration:none}
.wf-row.sel{background:var(--accent-soft)}
.wf-name{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-size:13px}
.wf-name .k{color:var(--faint);font-size:11.5px;margin-left:6px}
.wf-track{position:relative;height:14px}
.wf-bar{position:absolute;top:2px;height:10px;border-radius:3px;background:var(--bar);min-width:2px}
.wf-bar.llm{background:var(--bar-llm)}
.wf-bar.error{background:var(--err)}
.wf-dur{text-align:right;color:var(--muted);font-size:12px;font-variant-numeric:tabular-nums}
.wf-scale{display:flex;justify-content:space-between;color:var(--faint);font-size:11px}
.detail{padding:18px 20px;position:sticky;top:70px;max-height:calc(100vh - 90px);overflow:auto}
.detail h2{display:flex;align-items:center;gap:8px;flex-wrap:wrap}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(130px,1fr));gap:10px;margin:12px 0}
.kv div{background:var(--panel-2);border-radius:8px;padding:8px 10px}
.kv span{display:block;color:var(--muted);font-size:11.5px}
.kv b{font-weight:600;font-variant-numeric:tabular-nums;font-size:13.5px}
.callout{border-radius:8px;padding:10px 12px;margin:10px 0;font-size:13px}
.callout.error{background:var(--err-soft);color:var(--err)}
.msgs{display:flex;flex-direction:column;gap:8px}
.msg{border:1px solid var(--border);border-radius:10px;padding:10px 12px;background:var(--panel)}
.msg .role{font-size:11px;font-weight:650;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);margin-bottom:4px}
.msg.system{background:var(--panel-2)}
.msg.assistant{border-color:color-mix(in srgb,var(--accent) 35%,var(--border));background:color-mix(in srgb,var(--accent-soft) 55%,var(--panel))}
.msg.assistant .role{color:var(--accent)}
.msg .text{white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere}
.msg pre,pre.raw{background:var(--panel-2);border-radius:8px;padding:10px;overflow:auto;font-family:var(--mono);font-size:12px;margin:6px 0 0;white-space:pre-wrap;word-break:break-all}
.tool{font-family:var(--mono);font-size:12px;color:var(--muted)}
table.attrs{width:100%;border-collapse:collapse;font-size:12.5px}
table.attrs td{padding:6px 8px;border-bottom:1px solid var(--border);vertical-align:top}
table.attrs td:first-child{color:var(--muted);font-family:var(--mono);white-space:nowrap;width:40%}
table.attrs td:last-child{font-family:var(--mono);word-break:break-all}
.convo{max-width:860px;display:flex;flex-direction:column;gap:18px}
.turn{padding:16px 18px}
.turn .meta{display:flex;gap:14px;flex-wrap:wrap;color:var(--faint);font-size:12px;margin-top:10px;font-variant-numeric:tabular-nums}
.bubble{max-width:85%;border-radius:14px;padding:10px 14px;white-space:pre-wrap;overflow-wrap:anywhere;margin:6px 0}
.bubble.user{background:var(--panel-2);align-self:flex-start;border-top-left-radius:4px}
.bubble.assistant{background:var(--accent);color:#fff;margin-left:auto;border-top-right-radius:4px}
.bubble.assistant.error{background:var(--err)}
.bubble-row{display:flex;flex-direction:column}
.who{font-size:11.5px;color:var(--faint);font-weight:600}
.who.right{text-align:right}
.login{max-width:400px;margin:12vh auto;padding:30px 30px 26px}
.login h1{margin:14px 0 6px}
.login p{color:var(--muted);margin:0 0 18px}
.login input{width:100%;margin-bottom:12px}
.login .btn{width:100%}
.badge.run{color:var(--accent);background:var(--accent-soft)}
.callout.ok{background:var(--ok-soft);color:var(--ok)}
.callout.neutral{background:var(--panel-2);color:var(--text)}
.err-text{color:var(--err)}
.progress{display:inline-block;vertical-align:middle;width:80px;height:6px;border-radius:3px;background:var(--panel-2);overflow:hidden;margin-right:8px}
.progress>span{display:block;height:100%;background:var(--accent)}
.agg{white-space:nowrap;font-size:12.5px;color:var(--muted)}
.agg b{color:var(--text)}
.clip{max-height:7.6em;max-width:360px;min-width:140px;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;font-size:13px}
.expl{color:var(--muted);font-size:12px;margin-top:3px;max-width:280px;overflow-wrap:anywhere}
table.data td.result{min-width:130px}
.eval-error{color:var(--err);font-size:12px;max-width:280px;overflow-wrap:anywhere}
.eval-error .badge{margin-bottom:3px}
.delta{font-variant-numeric:tabular-nums}
.delta.up{color:var(--ok)}
.delta.down{color:var(--err)}
td.verdict{min-width:220px;font-size:13px}
td.verdict.up{color:var(--ok)}
td.verdict.down{color:var(--err)}
select.wide{max-width:none;width:100%}
svg.chart .zero{stroke:var(--muted);stroke-width:1}
svg.chart .ci{stroke:var(--text);stroke-width:1.5}
svg.chart .bar-up{fill:var(--ok)}
svg.chart .bar-down{fill:var(--err)}
svg.chart .bar-flat{fill:var(--bar)}
svg.chart text.lbl{fill:var(--text);font-size:12px}
svg.chart text.val{fill:var(--muted);font-size:12px}
.footer{color:var(--faint);font-size:12px;text-align:center;margin-top:30px}
"""#

    static let js = #"""
(function(){
  try{var t=localStorage.getItem('evalforge-theme');if(t)document.documentElement.setAttribute('data-theme',t);}catch(e){}
  function localTimes(){
    document.querySelectorAll('time[data-ms]').forEach(function(el){
      var d=new Date(Number(el.getAttribute('data-ms')));
      if(!isNaN(d)){el.title=el.textContent;el.textContent=d.toLocaleString(undefined,{year:'numeric',month:'short',day:'numeric',hour:'2-digit',minute:'2-digit',second:'2-digit'});}
    });
  }
  function themeToggle(){
    var b=document.getElementById('theme-toggle');if(!b)return;
    b.addEventListener('click',function(){
      var cur=document.documentElement.getAttribute('data-theme');
      var dark=cur?cur==='dark':window.matchMedia('(prefers-color-scheme: dark)').matches;
      var next=dark?'light':'dark';
      document.documentElement.setAttribute('data-theme',next);
      try{localStorage.setItem('evalforge-theme',next);}catch(e){}
    });
  }
  function waterfall(){
    var rows=document.querySelectorAll('.wf-row[data-span]');if(!rows.length)return;
    function select(id){
      var found=false;
      document.querySelectorAll('.span-detail').forEach(function(p){var on=p.id==='span-'+id;p.hidden=!on;if(on)found=true;});
      if(!found)return;
      rows.forEach(function(r){r.classList.toggle('sel',r.getAttribute('data-span')===id);});
    }
    rows.forEach(function(r){r.addEventListener('click',function(ev){ev.preventDefault();var id=r.getAttribute('data-span');select(id);history.replaceState(null,'','#span-'+id);});});
    var h=location.hash.replace('#span-','');
    if(h)select(h);
  }
  function autosubmit(){
    document.querySelectorAll('form[data-autosubmit] select').forEach(function(s){s.addEventListener('change',function(){s.form.submit();});});
  }
  document.addEventListener('DOMContentLoaded',function(){localTimes();themeToggle();waterfall();autosubmit();});
})();
"""#
}
