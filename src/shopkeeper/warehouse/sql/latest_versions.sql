-- The latest version of every asset, with its catalog entry.
SELECT v.*
FROM meta.versions AS v
JOIN (SELECT asset, max(version) AS version FROM meta.versions GROUP BY asset) AS l
  USING (asset, version)
ORDER BY v.asset
