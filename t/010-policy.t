# Certificates, agencies, purposes and scopes: every row of SPEC section 3
# that is decided without Redis, and the allowed path with the headers the
# backend receives.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

add_block_preprocessor(\&juki_defaults);

redis_flush();

run_tests();

# every request the module saw is in the trail with its decision, the
# backend saw exactly the allowed ones, and no resident code is anywhere
my @records = grep { !exists $_->{phase} } audit_records();
my %decisions;
$decisions{$_->{decision}}++ for @records;

is($decisions{'allow'}, 5, 'allowed requests audited');
# 3 refused by the module (TEST 10, 11, 13), 5 by NGINX itself under
# ssl_verify_client (TEST 6-9, 12), recorded from the log phase
is($decisions{'deny:unverified_certificate'}, 8,
   'unverified certificates audited');
is(scalar(grep { $_->{decision} eq 'deny:unverified_certificate'
                 && $_->{cert} =~ /^[0-9a-f]{32}$/ } @records), 4,
   'the refusals of a presented certificate name its fingerprint');
is($decisions{'deny:unknown_agency'}, 1, 'unknown agency audited');
is($decisions{'deny:bad_purpose'}, 4, 'bad purposes audited');
is($decisions{'deny:bad_operator'}, 4, 'bad operators audited');
is($decisions{'deny:purpose_not_permitted'}, 15,
   'purposes not permitted audited');
is($decisions{'deny:resident_code_forbidden'}, 2,
   'resident code denials audited');

unlike(dump_redis(), qr/12345678901|23456789012|98765432109/,
       'no resident code anywhere in redis');

ok((grep { $_->{uri} eq '/v1/residents/{code}/history' } @records),
   'a resident code in the path is masked in the record');
ok((grep { $_->{uri} eq '/v1/admin' && $_->{decision} eq
           'deny:purpose_not_permitted' } @records),
   'the record names the normalised path that was refused');

my @done = grep { ($_->{phase} // '') eq 'done' } audit_records();
is(scalar @done, 5, 'one completion record per forwarded request');
is(join(',', sort map { $_->{status} } @done), '200,200,200,200,200',
   'completion records carry the status');

__DATA__

=== TEST 1: allowed: national agency, granted purpose, resident code
--- request
GET /v1/residents/?code=12345678901
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","kind":"national","purpose":"pension.benefit","operator":"op-1","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/residents/\?code=12345678901"\}$
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 2: allowed: every Juki-* header the client sent is replaced or removed
--- request
GET /v1/residents/?code=12345678901
--- more_headers
Juki-Agency: shibuya-city
Juki-Agency-Kind: municipality
juki-audit-id: forged-1
JUKI-EXTRA: smuggled
Juki-Purpose: health.insurance
Juki-Operator: op.2_x-Y
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","kind":"national","purpose":"health.insurance","operator":"op.2_x-Y","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/residents/\?code=12345678901"\}$
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 3: allowed: municipality by its pinned certificate
--- request
GET /v1/residents/23456789012/history?code=23456789012
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: school.enrolment
Juki-Operator: clerk-7
--- error_code: 200
--- response_body_like chomp
^\{"agency":"shibuya-city","kind":"municipality","purpose":"school.enrolment","operator":"clerk-7","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/residents/23456789012/history\?code=23456789012"\}$
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 4: allowed: private agency without a resident code
--- request
GET /v1/verify?name=Hanako&birth=1990-01-01
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-3
--- error_code: 200
--- response_body_like chomp
^\{"agency":"example-bank","kind":"private","purpose":"identity.verification","operator":"teller-3","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/verify\?name=Hanako&birth=1990-01-01"\}$
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 5: allowed: a POST inside its purpose
--- request
POST /v1/tax/assessments
hello
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: tax.assessment
Juki-Operator: tax-1
--- error_code: 200
--- response_body_like chomp
^\{"agency":"shibuya-city","kind":"municipality","purpose":"tax.assessment","operator":"tax-1","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"POST","uri":"/v1/tax/assessments"\}$
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 6: no certificate at all: NGINX refuses (ssl_verify_client on)
--- request
GET /nocert/v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like: No required SSL certificate was sent



=== TEST 7: revoked certificate: NGINX refuses
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: revoked
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like: The SSL certificate error



=== TEST 8: expired certificate: NGINX refuses
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: expired
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like: The SSL certificate error



=== TEST 9: certificate from an untrusted CA: NGINX refuses
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: untrusted
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like: The SSL certificate error



=== TEST 10: ssl_verify_client optional and no certificate: the module refuses
--- request
GET /nocert/v1/residents/
--- more_headers
X-Test-Gw: optional
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unverified_certificate","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 11: ssl_verify_client optional_no_ca and an untrusted certificate
--- request
GET /v1/residents/
--- more_headers
X-Test-Gw: optional_no_ca
X-Test-Cert: untrusted
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unverified_certificate","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 12: ssl_verify_client optional_no_ca and a revoked certificate
--- request
GET /v1/residents/
--- more_headers
X-Test-Gw: optional_no_ca
X-Test-Cert: revoked
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code_like: ^(400|403)$
--- response_body_unlike: "agency":



=== TEST 13: plain HTTP to a juki location: refused
--- request
GET /v1/residents/
--- more_headers
X-Test-Gw: plain
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unverified_certificate","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 14: a trusted certificate that maps to no agency
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: unmapped
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unknown_agency","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 15: Juki-Purpose missing
--- request
GET /v1/residents/
--- more_headers
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 16: Juki-Purpose malformed
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 17: Juki-Purpose sent twice
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
juki-purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 18: Juki-Purpose empty
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose:
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 19: Juki-Operator missing
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 20: Juki-Operator malformed
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op/1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 21: Juki-Operator of 65 characters
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 22: Juki-Operator sent twice
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
Juki-Operator: op-2
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 23: purpose exists but is not granted to the agency
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: tax.assessment
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 24: purpose unknown
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: marketing.campaign
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 25: method outside the purpose
--- request
POST /v1/residents/
x
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 26: HEAD is not GET
--- request
HEAD /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body chomp



=== TEST 27: URI outside the purpose
--- request
GET /v1/admin/users
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 28: dot segments do not escape the prefix
--- request
GET /v1/residents/../admin/users
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 29: percent-encoded dot segments do not escape the prefix
--- request
GET /v1/residents/%2e%2e/%2E%2E/v1/admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 30: an encoded slash does not escape the prefix
--- request
GET /v1/residents/..%2f..%2fv1%2fadmin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 31: double-encoded dots are refused, a backend could decode them
--- request
GET /v1/residents/%252e%252e/admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 32: doubled slashes do not escape the prefix
--- request
GET //v1//residents/..//..//admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 33: a prefix matches at a segment boundary only
--- request
GET /v1/verifyall
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-3
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 34: a backslash is out of every scope
--- request
GET /v1/residents/..\admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 35: the purpose's prefix without its trailing slash
--- request
GET /v1/residents
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 36: a lower-case method is no method of the purpose
--- raw_request eval
"get /v1/residents/ HTTP/1.0\r
Juki-Purpose: pension.benefit\r
Juki-Operator: op-1\r
\r
"
--- error_code: 400



=== TEST 37: an unknown method
--- request
PURGE /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 38: a private agency may not send a resident code
--- request
GET /v1/verify?code=98765432109
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-3
--- error_code: 403
--- response_body_like chomp
^\{"error":"resident_code_forbidden","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 39: a purpose that forbids the resident code
--- request
GET /v1/echo?code=12345678901
--- more_headers
Juki-Purpose: network.diagnostics
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"resident_code_forbidden","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 40: OPTIONS is outside the purpose
--- request
OPTIONS /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$
