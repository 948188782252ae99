-- Sales lines between two dates, with product, customer and the revenue of each line.
-- @param from_date date help="First day included (YYYY-MM-DD)."
-- @param to_date date help="First day no longer included (YYYY-MM-DD)."
-- @param product_ids list[int] default="" help="Only these product ids; all products when empty."
SELECT
    s.id AS sale_id,
    s.sold_at,
    p.id AS product_id,
    p.name AS product,
    p.category,
    c.name AS customer,
    c.country,
    s.quantity,
    p.unit_price,
    ROUND(s.quantity * p.unit_price, 2) AS revenue
FROM sales AS s
JOIN products AS p ON p.id = s.product_id
JOIN customers AS c ON c.id = s.customer_id
WHERE s.sold_at >= :from_date
  AND s.sold_at < :to_date
  AND (:product_ids__count = 0 OR s.product_id IN :product_ids)
ORDER BY s.sold_at, s.id
