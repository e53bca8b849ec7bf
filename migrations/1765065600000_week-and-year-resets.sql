-- Up Migration

-- Metrics may also start again every ISO week (Monday 00:00 UTC) and every UTC year.
alter table metrics drop constraint metrics_reset_period_check;
alter table metrics add constraint metrics_reset_period_check
  check (reset_period in ('day', 'week', 'month', 'year', 'never'));

-- Down Migration

alter table metrics drop constraint metrics_reset_period_check;
alter table metrics add constraint metrics_reset_period_check
  check (reset_period in ('day', 'month', 'never'));
