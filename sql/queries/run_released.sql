-- Whether run run_id was released: a RELEASE decision (workbench) or committed lines (a release
-- without review, retailopt run --release).
SELECT
  (SELECT COUNT(*) FROM `{dataset}.plan_decisions` WHERE run_id = @run_id AND action = 'RELEASE')
  + (SELECT COUNT(*) FROM `{dataset}.committed_lines` WHERE run_id = @run_id) AS marks
