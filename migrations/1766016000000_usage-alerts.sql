-- Up Migration

-- Percentages of a metric's allowance whose crossing is announced (usage.threshold_crossed).
alter table metrics add column alert_thresholds integer[] not null default '{80,100}';

-- The highest of its metric's thresholds a counter row (one period) has announced: each is
-- crossed once per period. A usage reset sets it back to 0.
alter table usage_counters add column alerted_percent smallint not null default 0;

-- Down Migration

alter table usage_counters drop column alerted_percent;
alter table metrics drop column alert_thresholds;
