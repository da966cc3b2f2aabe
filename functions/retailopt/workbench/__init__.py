"""The planner workbench: web pages of the API app to review, correct, approve and release a plan.

- `views`: the reads behind every page (paged SQL from `sql/queries/wb_*.sql`, parameters only).
- `decisions`: approvals, rejections, quantity edits (validated) and the release, written to the
  append-only `plan_decisions` table; the release publishes the approved lines once.
- `web`: server-side rendering (Jinja2, autoescaped), the CSRF check, roles and static files.

The pages are routes of `retailopt.services.api.Api`, behind the same authentication as the JSON
API.
"""
