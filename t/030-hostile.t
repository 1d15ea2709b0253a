# Hostile input: header floods and oversize headers, bytes that are not
# allowed in Juki-Purpose / Juki-Operator, duplicated and re-cased Juki-*
# headers, URI tricks against purpose scopes, methods outside a purpose,
# conflicting framing, HTTP/1.0, several requests on one connection, an
# unpinned certificate and an expired CRL.
#
# Every block names what it expects in its title: "[backend N; trail D ...]"
# is the number of requests the backend must see during the block and the
# decisions of the audit records the block must add ("none": the request
# never reaches the module -- NGINX refuses it first, in the test client's
# NGINX or in the gateway's; NGINX's own certificate refusals are recorded
# from the log phase).  The preprocessor gives every block an init
# that takes a snapshot of the trail and of the backend's log (a second
# access log outside the servroot, see JukiTest::http_config_ext), and the
# checks after run_tests() compare consecutive snapshots, so they hold in
# HUP mode too, where logs/backend.log is not reset between blocks.

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

our (@MARKS, %EXPECT);

# init code of every block (also evaluated by the genuine library, in its
# own package: hence the full name)
sub mark {
    my $n = shift;
    my %seen = map { ("$_->{_stream} $_->{_id}" => $_) } JukiTest::audit_records();
    my @lines = JukiTest::backend_log_lines();
    push @MARKS, { n => $n, records => \%seen, lines => \@lines };
}

add_block_preprocessor(sub {
    my $block = shift;
    my ($n) = $block->name =~ /^TEST (\d+):/
        or die "block name without a number: " . $block->name . "\n";
    my ($hits, $trail) = $block->name =~ /\[backend (\d+); trail ([^\]]*)\]/
        or die "block name without [backend N; trail ...]: "
               . $block->name . "\n";
    $EXPECT{$n} = { name => $block->name, hits => $hits,
                    trail => join ' ', sort grep { $_ ne 'none' }
                                       split ' ', $trail };
    $block->set_value('http_config', JukiTest::http_config_ext())
        unless defined $block->http_config;
    my $init = $block->init;
    $block->set_value('init', "main::mark($n);\n"
                               . (defined $init ? $init : ''));
    juki_defaults($block);
});

redis_flush();
unlink JukiTest::backend_log_path();

run_tests();

# the last block's requests have been answered; its backend log line is
# written when the backend finalises the request, give it a moment
select(undef, undef, undef, 0.3);
mark(undef);

my %total;
for my $i (0 .. $#MARKS - 1) {
    my ($m, $next) = @MARKS[$i, $i + 1];
    my $e = $EXPECT{$m->{n}} or next;
    my @new = grep { !exists $m->{records}{$_} } keys %{$next->{records}};
    my @audit = grep { !exists $_->{phase} } map { $next->{records}{$_} } @new;
    my $trail = join ' ', sort map { $_->{decision} } @audit;
    $total{$_->{decision}}++ for @audit;
    my @lines = @{$next->{lines}}[scalar @{$m->{lines}} .. $#{$next->{lines}}];
    (my $short = $e->{name}) =~ s/\s*\[.*//;
    is(scalar @lines, $e->{hits}, "$short - backend saw $e->{hits}")
        or diag "backend log of the block:\n", @lines;
    is($trail, $e->{trail}, "$short - audit trail: "
                            . ($e->{trail} eq '' ? 'no record' : $e->{trail}));
}

# the forwarded requests are the allowed ones, and only those paths
my @forwarded = map {
    my ($m, $next) = @MARKS[$_, $_ + 1];
    @{$next->{lines}}[scalar @{$m->{lines}} .. $#{$next->{lines}}]
} grep { defined $MARKS[$_ + 1] } 0 .. $#MARKS - 1;
my @outside = grep { !m{"(?:GET|HEAD) /v1/residents/[^ ]* HTTP/1\.[01]"} } @forwarded;
is(scalar @outside, 0, 'the backend never saw a request outside the scope')
    or diag @outside;

my @done = grep { ($_->{phase} // '') eq 'done' } audit_records();
is(scalar @done, $total{allow} // 0, 'one completion record per allowed request');
ok((!grep { !check_record($_) } grep { !exists $_->{phase} } audit_records()),
   'every audit record of the file verifies (A2 mac)');

__DATA__

=== TEST 1: header flood (300 headers, 100 forged Juki-*), valid Juki-* last: allowed, forged ones dropped [backend 1; trail allow]
--- request
GET /v1/residents/
--- more_headers eval
join("\n", (map { "X-Flood-$_: " . ('f' x 40) } 1 .. 300),
           (map { ("Juki-Agency: forged-$_", "Juki-Extra: smuggled-$_") } 1 .. 50),
           "Juki-Purpose: pension.benefit", "Juki-Operator: op-flood")
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","kind":"national","purpose":"pension.benefit","operator":"op-flood","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/residents/"\}$



=== TEST 2: header flood: Juki-Purpose first and again after 300 headers counts as a duplicate [backend 0; trail deny:bad_purpose]
--- request
GET /v1/residents/
--- more_headers eval
join("\n", "Juki-Purpose: pension.benefit",
           (map { "X-Flood-$_: " . ('f' x 40) } 1 .. 300),
           "juki-purpose: pension.benefit", "Juki-Operator: op-1")
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 3: header flood past the gateway's large_client_header_buffers (600 x 100 bytes): NGINX's 400 before the module [backend 0; trail none]
--- config eval
"large_client_header_buffers 4 128k;\n" . JukiTest::client_config()
--- request
GET /v1/residents/
--- more_headers eval
join("\n", (map { "X-Flood-$_: " . ('f' x 90) } 1 .. 600),
           "Juki-Purpose: pension.benefit", "Juki-Operator: op-1")
--- error_code: 400
--- response_body_like: Request Header Or Cookie Too Large



=== TEST 4: one 12 KB header value past the gateway's 8 KB buffer: NGINX's 400 before the module [backend 0; trail none]
--- config eval
"large_client_header_buffers 4 64k;\n" . JukiTest::client_config()
--- request
GET /v1/residents/
--- more_headers eval
join("\n", "Juki-Purpose: pension.benefit", "Juki-Operator: " . ('o' x 12288))
--- error_code: 400
--- response_body_like: Request Header Or Cookie Too Large



=== TEST 5: a 6 KB Juki-Operator (fits NGINX's buffer) is malformed [backend 0; trail deny:bad_operator]
--- request
GET /v1/residents/
--- more_headers eval
join("\n", "Juki-Purpose: pension.benefit", "Juki-Operator: " . ('o' x 6144))
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 6: a control byte (0x01) in Juki-Purpose [backend 0; trail deny:bad_purpose]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension\x01benefit\r\nJuki-Operator: op-1\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 7: ESC and DEL bytes in Juki-Operator [backend 0; trail deny:bad_operator]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op\x1b[0m-1\x7f\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 8: a tab inside Juki-Purpose [backend 0; trail deny:bad_purpose]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension\tbenefit\r\nJuki-Operator: op-1\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 9: invalid UTF-8 (0xff 0xfe) in Juki-Purpose [backend 0; trail deny:bad_purpose]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: \xff\xfepension.benefit\r\nJuki-Operator: op-1\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 10: an overlong UTF-8 dot (0xc0 0xae) in Juki-Operator [backend 0; trail deny:bad_operator]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op\xc0\xae1\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 11: valid UTF-8 outside A-Za-z0-9._- (a fullwidth digit) in Juki-Operator [backend 0; trail deny:bad_operator]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-\xef\xbc\x91\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 12: a NUL byte in Juki-Purpose: NGINX's 400 (invalid header line) before the module [backend 0; trail none]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension\0.benefit\r\nJuki-Operator: op-1\r\n\r\n"
--- error_code: 400
--- error_log
client sent invalid header line



=== TEST 13: a NUL byte in Juki-Operator: NGINX's 400 (invalid header line) before the module [backend 0; trail none]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-1\0\r\n\r\n"
--- error_code: 400
--- error_log
client sent invalid header line



=== TEST 14: Juki-Purpose twice, other case and other value [backend 0; trail deny:bad_purpose]
--- request
GET /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
JUKI-PURPOSE: health.insurance
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 15: Juki-Operator twice, the second one empty [backend 0; trail deny:bad_operator]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-1\r\njuki-operator:\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_operator","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 16: lower-case header names are the same headers: allowed [backend 1; trail allow]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\njuki-purpose: pension.benefit\r\njuki-operator: op-lower\r\n\r\n"
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","kind":"national","purpose":"pension.benefit","operator":"op-lower","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/residents/"\}$



=== TEST 17: upper- and mixed-case header names are the same headers: allowed [backend 1; trail allow]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJUKI-PURPOSE: pension.benefit\r\njUkI-oPeRaToR: op-UPPER\r\n\r\n"
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","kind":"national","purpose":"pension.benefit","operator":"op-UPPER","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/residents/"\}$



=== TEST 18: Juki_Purpose (underscore) is no alias: NGINX drops it, the purpose is missing [backend 0; trail deny:bad_purpose]
--- raw_request eval
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki_Purpose: pension.benefit\r\nJuki-Operator: op-1\r\n\r\n"
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 19: a Juki-Operator of exactly 64 characters is allowed [backend 1; trail allow]
--- request
GET /v1/residents/
--- more_headers eval
"Juki-Purpose: pension.benefit\nJuki-Operator: " . ('o' x 63) . '9'
--- error_code: 200
--- response_body_like: "operator":"o{63}9"



=== TEST 20: %2e%2e out of the scope [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents/%2e%2e/%2e%2e/v1/admin/users
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 21: %2F as the separator of a dot segment [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents%2F..%2Fadmin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 22: // and /./ around the prefix [backend 0; trail deny:purpose_not_permitted]
--- request
GET //v1/./residents/.//..//./admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 23: %00 in the path: NGINX's 400 before the module [backend 0; trail none]
--- request
GET /v1/residents/%00/../../admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400



=== TEST 24: %00 inside the scope: NGINX's 400 before the module [backend 0; trail none]
--- request
GET /v1/residents/12%00.json
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400



=== TEST 25: %25 (a literal "%" after decoding) is out of every scope [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents/%252e%252e%252fadmin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 26: an encoded backslash (%5c) is out of every scope [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents/..%5c..%5cadmin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 27: overlong UTF-8 dots (%c0%ae) a lax backend decodes to ".." [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents/%c0%ae%c0%ae/admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 28: trailing ".." leaves the prefix [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents/..
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 29: a trailing dot after the prefix name is not the prefix [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents.
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 30: "..;" (a path parameter Tomcat/Spring strip, then resolve "..") [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents/..;/admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 31: dot segments above the root: NGINX's 400 before the module [backend 0; trail none]
--- request
GET /v1/residents/%2e%2e/%2e%2e/%2e%2e/etc/passwd
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400



=== TEST 32: a scope path in the query string does not count [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/admin?/v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 33: HEAD is outside a GET purpose [backend 0; trail deny:purpose_not_permitted]
--- request
HEAD /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body chomp



=== TEST 34: OPTIONS is outside a GET purpose [backend 0; trail deny:purpose_not_permitted]
--- request
OPTIONS /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 35: PROPFIND (unknown to NGINX) is outside the purpose [backend 0; trail deny:purpose_not_permitted]
--- request
PROPFIND /v1/residents/
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 36: a lower-case method over HTTP/1.1: NGINX's 400 before the module [backend 0; trail none]
--- raw_request eval
"get /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-1\r\n\r\n"
--- error_code: 400



=== TEST 37: a mixed-case method: NGINX's 400 before the module [backend 0; trail none]
--- raw_request eval
"GeT /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-1\r\n\r\n"
--- error_code: 400



=== TEST 38: TRACE: NGINX's 405 before the module [backend 0; trail none]
--- raw_request eval
"TRACE /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-1\r\n\r\n"
--- error_code: 405



=== TEST 39: Content-Length and Transfer-Encoding together: NGINX's 400 before the module [backend 0; trail none]
--- raw_request eval
"POST /v1/tax/assessments HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Test-Cert: municipality\r\nJuki-Purpose: tax.assessment\r\nJuki-Operator: op-1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
--- error_code: 400
--- error_log
client sent "Content-Length" and "Transfer-Encoding" headers at the same time



=== TEST 40: an unknown Transfer-Encoding: NGINX's 501 before the module [backend 0; trail none]
--- raw_request eval
"POST /v1/tax/assessments HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Test-Cert: municipality\r\nJuki-Purpose: tax.assessment\r\nJuki-Operator: op-1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
--- error_code: 501



=== TEST 41: a GET whose body is a smuggled request: allowed, forwarded once, the body stays a body [backend 1; trail allow]
--- raw_request eval
my $smuggled = "GET /v1/admin/users HTTP/1.1\r\nHost: localhost\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-1\r\n\r\n";
"GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-body\r\nContent-Length: " . length($smuggled) . "\r\n\r\n$smuggled"
--- error_code: 200
--- response_body_like: "operator":"op-body"



=== TEST 42: a denied GET with a body that is a smuggled request: the body is discarded, not run [backend 0; trail deny:purpose_not_permitted]
--- raw_request eval
my $smuggled = "GET /v1/residents/ HTTP/1.1\r\nHost: localhost\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-1\r\n\r\n";
"GET /v1/admin/users HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nJuki-Purpose: pension.benefit\r\nJuki-Operator: op-1\r\nContent-Length: " . length($smuggled) . "\r\n\r\n$smuggled"
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 43: HTTP/1.0, allowed [backend 1; trail allow]
--- request
GET /v1/residents/ HTTP/1.0
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-http10
--- error_code: 200
--- response_body_like: "operator":"op-http10"



=== TEST 44: HTTP/1.0, denied [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/admin/users HTTP/1.0
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 45: pipelined allowed, denied, allowed; the gateway gets them on one kept-alive TLS connection [backend 2; trail allow allow deny:purpose_not_permitted]
--- http_config eval
JukiTest::http_config_ext(
    location => 'add_header X-Gw-Conn-Requests $connection_requests always;',
    http => "upstream juki_gw_keepalive {\n"
          . "        server 127.0.0.1:$ENV{TEST_NGINX_GW_PORT};\n"
          . "        keepalive 2;\n    }\n")
--- config eval
JukiTest::client_config() . <<"EOF_KA"
    location /ka/ {
        rewrite ^/ka(/.*)\$ \$1 break;
        proxy_pass https://juki_gw_keepalive;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host localhost;
        proxy_ssl_certificate $ENV{TEST_NGINX_PKI}/national.pem;
        proxy_ssl_certificate_key $ENV{TEST_NGINX_PKI}/national.key;
    }
EOF_KA
--- pipelined_requests eval
["GET /ka/v1/residents/1", "GET /ka/v1/admin/users", "GET /ka/v1/residents/3"]
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-pipe
--- error_code eval
[200, 403, 200]
--- response_headers eval
["X-Gw-Conn-Requests: 1", "X-Gw-Conn-Requests: 2", "X-Gw-Conn-Requests: 3"]
--- response_body_like eval
['"uri":"/v1/residents/1"', '^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$', '"uri":"/v1/residents/3"']



=== TEST 46: a trusted certificate whose fingerprint is not pinned [backend 0; trail deny:unknown_agency]
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: unmapped
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"unknown_agency","audit_id":"[0-9a-f]{16}-\d+"\}$



=== TEST 47: an expired CRL: NGINX refuses every client certificate (400) before the module, which records it from the log phase [backend 0; trail deny:unverified_certificate deny:unverified_certificate]
--- http_config eval
JukiTest::http_config_ext(crl => 'crl-expired.pem')
--- request eval
["GET /v1/residents/", "GET /v1/residents/"]
--- more_headers eval
["Juki-Purpose: pension.benefit\nJuki-Operator: op-1",
 "X-Test-Cert: municipality\nJuki-Purpose: health.insurance\nJuki-Operator: op-1"]
--- error_code eval
[400, 400]
--- response_body_like eval
["The SSL certificate error", "The SSL certificate error"]
--- error_log
CRL has expired



=== TEST 48: an expired CRL is not relaxed by ssl_verify_client optional_no_ca: NGINX's 400 before the module, recorded [backend 0; trail deny:unverified_certificate]
--- http_config eval
JukiTest::http_config_ext(crl => 'crl-expired.pem')
--- request
GET /v1/residents/
--- more_headers
X-Test-Gw: optional_no_ca
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like: The SSL certificate error
--- error_log
CRL has expired



=== TEST 49: ".;" (a segment NGINX keeps and then removes with "..", Tomcat/Spring see "/./..") [backend 0; trail deny:purpose_not_permitted]
--- request
GET /v1/residents/.;/../admin
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 403
--- response_body_like chomp
^\{"error":"purpose_not_permitted","audit_id":"[0-9a-f]{16}-\d+"\}$
