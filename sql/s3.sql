-- AWS Signature V4 presigned URLs (src/s3.c).
SET benefits.s3_endpoint = '';
SET benefits.s3_region = 'us-east-1';
SET benefits.s3_bucket = 'examplebucket';
SET benefits.s3_access_key_id = 'AKIAIOSFODNN7EXAMPLE';
SET benefits.s3_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
SET benefits.s3_url_style = 'virtual';

-- AWS's published query-string example (GET /test.txt, 24 hours), exactly.
SELECT benefits.presign_s3_url('GET', 'test.txt', '86400 seconds', '2013-05-24 00:00:00+00');
SELECT benefits.presign_s3_url('GET', 'test.txt', '1 day', '2013-05-24 00:00:00+00')
       ~ 'X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404$' AS aws_example;

-- Path style, a local endpoint with a port, keys with spaces, non-ASCII and
-- reserved characters (encoded once, "/" kept), extra parameters sorted.
SET benefits.s3_endpoint = 'http://127.0.0.1:9000/';
SET benefits.s3_url_style = 'path';
SELECT benefits.presign_s3_url('GET', 'dir/my file (1).zip', '1 hour', '2024-01-02 03:04:05+00');
SELECT benefits.presign_s3_url('PUT', 'ünïcødé/日本語.txt', '10 minutes', '2024-01-02 03:04:05+00');
SELECT benefits.presign_s3_url('PUT', 'a+b=c&d', '10 minutes', '2024-01-02 03:04:05+00',
                               '{"uploadId": "x/y+z", "partNumber": 3}');
SELECT benefits.presign_s3_url('POST', 'big.bin', '10 minutes', '2024-01-02 03:04:05+00', '{"uploads": ""}');
-- Default ports are not part of the Host; a path prefix is kept; other regions.
SET benefits.s3_endpoint = 'https://storage.example.com:443/s3';
SET benefits.s3_region = 'eu-west-3';
SELECT benefits.presign_s3_url('get', 'k', '1 second', '2024-01-02 03:04:05+00');
SET benefits.s3_endpoint = '';
SET benefits.s3_url_style = 'virtual';
SELECT benefits.presign_s3_url('GET', 'k', '1 second', '2024-01-02 03:04:05+00');

-- The expiry defaults to benefits.download_url_ttl.
SET benefits.download_url_ttl = '15min';
SELECT benefits.presign_s3_url('GET', 'k') ~ '&X-Amz-Expires=900&' AS default_ttl;
RESET benefits.download_url_ttl;
SELECT benefits.presign_s3_url('GET', 'k') ~ '&X-Amz-Expires=3600&' AS default_ttl;

-- URL styles.  auto (the default) puts the bucket in the path when the
-- endpoint's host is an IP address or localhost, or when the bucket name is
-- not DNS-safe (uppercase, underscores, dots over https, too short or long,
-- a label starting or ending with a hyphen, formatted as an IPv4 address);
-- virtual and path force their style.
RESET benefits.s3_url_style;
SHOW benefits.s3_url_style;
SET benefits.s3_endpoint = '';
SET benefits.s3_region = 'us-east-1';
SET benefits.s3_bucket = 'examplebucket';
SELECT benefits.presign_s3_url('GET', 'test.txt', '1 day', '2013-05-24 00:00:00+00')
       ~ '^https://examplebucket\.s3\.amazonaws\.com/test\.txt\?.*X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404$'
       AS aws_example_by_default;
CREATE FUNCTION pg_temp.url_base(style text, endpoint text, bucket text) RETURNS text
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('benefits.s3_url_style', style, true),
            set_config('benefits.s3_endpoint', endpoint, true),
            set_config('benefits.s3_bucket', bucket, true);
    RETURN split_part(benefits.presign_s3_url('GET', 'k', '1 second', '2024-01-02 03:04:05+00'), '?', 1);
END
$$;
SELECT s.style, e.endpoint, b.bucket, pg_temp.url_base(s.style, e.endpoint, b.bucket) AS url
  FROM (VALUES (1, 'auto'), (2, 'virtual'), (3, 'path')) s(n, style),
       (VALUES (1, 'http://127.0.0.1:9000'), (2, 'http://[::1]:9000'), (3, 'http://localhost:9000'),
               (4, 'https://storage.example.com'), (5, '')) e(n, endpoint),
       (VALUES (1, 'downloads'), (2, 'My_Bucket')) b(n, bucket)
 ORDER BY s.n, e.n, b.n;
-- What auto judges DNS-safe, over https and http.
SELECT b.bucket, pg_temp.url_base('auto', 'https://storage.example.com', b.bucket) AS https,
       pg_temp.url_base('auto', 'http://storage.example.com', b.bucket) AS http
  FROM (VALUES (1, 'downloads'), (2, 'my.bucket'), (3, 'a.b.c'), (4, 'Downloads'), (5, 'my_bucket'),
               (6, 'ab'), (7, repeat('x', 63)), (8, repeat('x', 64)), (9, '-downloads'), (10, 'downloads-'),
               (11, 'a..b'), (12, 'a.-b'), (13, '192.168.5.4'), (14, '192.168.5.4444'), (15, 'my~bucket')) b(n, bucket)
 ORDER BY b.n;
-- Other IP and localhost spellings; a host that only starts with digits is a name.
SELECT e.endpoint, pg_temp.url_base('auto', e.endpoint, 'downloads') AS url
  FROM (VALUES (1, 'http://127.0.0.1'), (2, 'https://10.0.0.7:443/s3'), (3, 'http://[2001:db8::1]:9000/'),
               (4, 'http://LOCALHOST:9000'), (5, 'http://localhost.:9000'), (6, 'http://127.1:9000'),
               (7, 'https://1.storage.example.com'), (8, 'http://localhost.example.com:9000')) e(n, endpoint)
 ORDER BY e.n;
SET benefits.s3_url_style = 'virtual';

-- Content-Disposition: a quoted ASCII fallback, and RFC 5987 for the rest.
SELECT benefits.s3_content_disposition('report.pdf');
SELECT benefits.s3_content_disposition('my "best" \ file.zip');
SELECT benefits.s3_content_disposition('Résumé 日本.pdf', 'inline');
SELECT benefits.s3_content_disposition('x', 'form-data');

-- Bad input is refused.
SELECT benefits.presign_s3_url('GET', 'k', '0 seconds');
SELECT benefits.presign_s3_url('GET', 'k', '8 days');
SELECT benefits.presign_s3_url('PATCH', 'k');
SELECT benefits.presign_s3_url('GET', '');
SELECT benefits.presign_s3_url('GET', repeat('k', 1025));
SELECT benefits.presign_s3_url('GET', 'k', NULL, now(), '{"X-Amz-Expires": "1"}');
SELECT benefits.presign_s3_url('GET', 'k', NULL, now(), '{"a": true}');
SELECT benefits.presign_s3_url('GET', 'k', NULL, now(), '[1]');
SET benefits.s3_endpoint = 'ftp://example.com';
SELECT benefits.presign_s3_url('GET', 'k');
SET benefits.s3_endpoint = 'https://';
SELECT benefits.presign_s3_url('GET', 'k');
RESET benefits.s3_endpoint;
RESET benefits.s3_bucket;
SELECT benefits.presign_s3_url('GET', 'k');

-- The credentials are superuser-only settings.
SET ROLE benefits_admin;
SHOW benefits.s3_secret_access_key;
SET benefits.s3_bucket = 'other';
RESET ROLE;
