-- Revenue and units per day and product between two dates.
-- @param from_date date help="First day included (YYYY-MM-DD)."
-- @param to_date date help="First day no longer included (YYYY-MM-DD)."
SELECT
    date(s.sold_at) AS day,
    p.id AS product_id,
    p.name AS product,
    SUM(s.quantity) AS units,
    ROUND(SUM(s.quantity * p.unit_price), 2) AS revenue
FROM sales AS s
JOIN products AS p ON p.id = s.product_id
WHERE s.sold_at >= :from_date
  AND s.sold_at < :to_date
GROUP BY date(s.sold_at), p.id, p.name
ORDER BY day, p.id
