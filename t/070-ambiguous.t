# Ambiguous requests (SPEC §3, issue 9 findings 3-9 and 19): a request NGINX
# and a backend could read differently -- the juki_subject parameter
# repeated or spelt otherwise, a raw "#", "?" or "#" decoded in the path, a
# method-override header -- is refused with 400 bad_request, recorded and
# never forwarded; forged Juki_* headers never reach the backend; neither
# the access log's $request nor the error log shows a query value, over
# HTTP/1 and HTTP/2; and a request whose access handler failed (500) is
# refused, not left hanging, when an error_page leads it back into a juki
# location.
#
# Every block names what it expects in its title: "[backend N; trail D ...]"
# is the number of requests the backend must see during the block and the
# decisions of the audit records the block must add.  Sections read by the
# preprocessor below:
#
#   --- record      one line per audit record the block adds: field=value
#                   pairs (subject=pseudonym(CODE) for a code's pseudonym);
#                   each line must match a distinct new record
#   --- secret      strings (codes, query values) that must appear in no
#                   error log line, no gateway access log line and no record
#                   of the block, nor anywhere in Redis at the end
#   --- gw_access   the lines the gateway's access log (log_format
#                   "$request $status") gets during the block, in order
#
# The gateway's access log and the backend's are kept outside the servroot
# (one file per run) and compared between snapshots taken in every block's
# init, as t/030-hostile.t does, so that the checks hold in HUP mode too.
# The HTTP/2 block talks to its own "listen ... ssl http2" server with curl
# (TEST_NGINX_H2_PORT, default TEST_NGINX_NOCA_PORT + 1).

use lib 't/juki';
use Test::Nginx::Socket 'no_plan';
use JukiTest;

repeat_each(1);
no_shuffle();
no_long_string();
no_root_location();
log_level('info');

$ENV{TEST_NGINX_H2_PORT} ||= $ENV{TEST_NGINX_NOCA_PORT} + 1;

our (@MARKS, %EXPECT, %H2, @SECRETS);

sub gw_log_path {
    return JukiTest::juki_env('TEST_NGINX_PKI') . '/../gw-ambiguous.log';
}

# the shared http{} part plus: the gateway's access log, the HTTP/2 server;
# %o: location, http (as http_config), subject => another juki_subject
sub ambiguous_config {
    my %o = @_;
    my $log = gw_log_path();
    my $h2 = $ENV{TEST_NGINX_H2_PORT};
    my $be = $ENV{TEST_NGINX_BACKEND_PORT};
    my $subject = delete $o{subject};
    my $text = JukiTest::http_config_ext(
        %o,
        location => "access_log $log juki_request;\n"
                    . ($o{location} // ''),
        http => "    log_format juki_request '\$request \$status';\n"
                . ($o{http} // '') . <<"EOF_H2");
    server {
        listen 127.0.0.1:$h2 ssl http2;
        ssl_verify_client on;
        location / {
            juki on;
            juki_subject \$arg_code;
            access_log $log juki_request;
            proxy_pass http://127.0.0.1:$be;
        }
    }
EOF_H2
    if (defined $subject) {
        $text =~ s/juki_subject \$arg_code;/juki_subject $subject;/g
            or die "ambiguous_config: no juki_subject to replace\n";
    }
    return $text;
}

sub lines_of {
    my $file = shift;
    open(my $fh, '<', $file) or return ();
    my @l = <$fh>;
    close $fh;
    chomp @l;
    return @l;
}

# init code of every block (the genuine library evaluates it in its own
# package: hence the full names)
sub mark {
    my $n = shift;
    my %seen = map { ("$_->{_stream} $_->{_id}" => $_) }
               JukiTest::audit_records();
    push @MARKS, { n => $n, records => \%seen,
                   backend => [JukiTest::backend_log_lines()],
                   access => [lines_of(gw_log_path())] };
}

# one HTTP/2 request with curl: [status, body]
sub h2 {
    my (%o) = @_;
    my $pki = JukiTest::juki_env('TEST_NGINX_PKI');
    my $cert = $o{cert} // 'national';
    my @cmd = ('curl', '-sS', '--http2', '--max-time', '10',
               '--cacert', "$pki/ca.pem", '--cert', "$pki/$cert.pem",
               '--key', "$pki/$cert.key", '-o', '-', '-w', '\n%{http_code}');
    push @cmd, '-H', $_ for @{$o{headers} // []};
    push @cmd, '--request-target', $o{target} if defined $o{target};
    push @cmd, "https://127.0.0.1:$ENV{TEST_NGINX_H2_PORT}"
               . ($o{target} ? '/' : $o{path});
    open(my $fh, '-|', @cmd) or die "curl: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    my ($body, $status) = $out =~ /\A(.*)\n(\d{3})\z/s
        or return [0, $out];
    return [$status, $body];
}

add_block_preprocessor(sub {
    my $block = shift;
    my ($n) = $block->name =~ /^TEST (\d+):/
        or die "block name without a number: " . $block->name . "\n";
    my ($hits, $trail) = $block->name =~ /\[backend (\d+); trail ([^\]]*)\]/
        or die "block name without [backend N; trail ...]: "
               . $block->name . "\n";
    my @secret = grep { length } split /\n/, $block->secret // '';
    push @SECRETS, @secret;
    $EXPECT{$n} = {
        name => $block->name, hits => $hits,
        trail => join(' ', sort grep { $_ ne 'none' } split ' ', $trail),
        records => [grep { length } split /\n/, $block->record // ''],
        secret => \@secret,
        access => defined $block->gw_access
                  ? [split /\n/, $block->gw_access] : undef,
    };
    $block->set_value('no_error_log', join "\n", @secret) if @secret;
    $block->set_value('http_config', ambiguous_config())
        unless defined $block->http_config;
    my $init = $block->init;
    $block->set_value('init', "main::mark($n);\n"
                               . (defined $init ? $init : ''));
    juki_defaults($block);
});

redis_flush();
unlink JukiTest::backend_log_path(), gw_log_path();

run_tests();

# the last block's log lines are written when NGINX finalises its requests
select(undef, undef, undef, 0.3);
mark(undef);

sub record_matches {
    my ($r, $spec) = @_;
    for my $pair (split ' ', $spec) {
        my ($f, $v) = $pair =~ /\A([a-z_]+)=(.*)\z/
            or die "bad --- record pair: $pair\n";
        $v = JukiTest::pseudonym($1) if $v =~ /\Apseudonym\((.*)\)\z/;
        return 0 unless ($r->{$f} // '') eq $v;
    }
    return 1;
}

for my $i (0 .. $#MARKS - 1) {
    my ($m, $next) = @MARKS[$i, $i + 1];
    my $e = $EXPECT{$m->{n}} or next;
    (my $short = $e->{name}) =~ s/\s*\[.*//;
    my @new = grep { !exists $m->{records}{$_} } keys %{$next->{records}};
    my @audit = grep { !exists $_->{phase} } map { $next->{records}{$_} } @new;
    my $trail = join ' ', sort map { $_->{decision} } @audit;
    my @hits = @{$next->{backend}}[scalar @{$m->{backend}}
                                   .. $#{$next->{backend}}];
    my @access = @{$next->{access}}[scalar @{$m->{access}}
                                    .. $#{$next->{access}}];

    is(scalar @hits, $e->{hits}, "$short - backend saw $e->{hits}")
        or diag "backend log of the block:\n", @hits;
    is($trail, $e->{trail}, "$short - audit trail: "
                            . ($e->{trail} eq '' ? 'no record' : $e->{trail}));

    my @left = @audit;
    for my $spec (@{$e->{records}}) {
        my ($k) = grep { record_matches($left[$_], $spec) } 0 .. $#left;
        ok(defined $k, "$short - a record with $spec")
            or diag Test::More::explain \@audit;
        splice @left, $k, 1 if defined $k;
    }

    if ($e->{access}) {
        Test::More::is_deeply(\@access, $e->{access}, "$short - gateway access log")
            or diag Test::More::explain \@access;
    }

    for my $s (@{$e->{secret}}) {
        my @in = grep { index($_, $s) >= 0 } @access;
        is(scalar @in, 0, "$short - no \"$s\" in the gateway access log")
            or diag @in;
        my @rec = grep { index(join("\n", values %$_), $s) >= 0 } @audit;
        is(scalar @rec, 0, "$short - no \"$s\" in its records")
            or diag Test::More::explain \@rec;
    }
}

my $dump = dump_redis();
my @stored = grep { index($dump, $_) >= 0 } @SECRETS;
is(scalar @stored, 0, 'no code or query value anywhere in Redis')
    or diag "found: @stored";

ok((!grep { !check_record($_) } grep { !exists $_->{phase} } audit_records()),
   'every audit record of the file verifies');

# the HTTP/2 answers (the requests were made in TEST 20's init)
my %want = (
    bad_purpose => [400, qr/\A\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}\n\z/],
    allowed => [200, qr/\A\{"agency":"pension-service",[^\n]*"uri":"\/v1\/residents\/\?code=33333333333"\}\n\z/],
    fragment => [400, qr/\A\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}\n\z/],
    decoded => [400, qr/\A\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}\n\z/],
    repeated => [400, qr/\A\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}\n\z/],
);
for my $k (sort keys %want) {
    my $got = $H2{$k} // [0, 'no answer'];
    is($got->[0], $want{$k}[0], "HTTP/2 $k - status $want{$k}[0]")
        or diag $got->[1];
    like($got->[1], $want{$k}[1], "HTTP/2 $k - body");
}

__DATA__

=== TEST 1: finding 3: a private agency, the code's name percent-encoded (c%6Fde) [backend 0; trail deny:bad_request]
--- request
GET /v1/verify/?c%6Fde=12345678901
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- error_log
juki: ambiguous request: juki_subject parameter in another spelling
--- record
agency=example-bank kind=private subject= uri=/v1/verify/ operator= purpose= decision=deny:bad_request
--- secret
12345678901
--- gw_access
GET /v1/verify/?... HTTP/1.0 400



=== TEST 2: finding 3: an empty code first, the real one second (?code=&code=) [backend 0; trail deny:bad_request]
--- request
GET /v1/verify/?code=&code=12345678901
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- error_log
juki: ambiguous request: juki_subject parameter or header repeated
--- record
agency=example-bank subject= uri=/v1/verify/ decision=deny:bad_request
--- secret
12345678901
--- gw_access
GET /v1/verify/?... HTTP/1.0 400



=== TEST 3: finding 3: a bare name first (?code&code=) [backend 0; trail deny:bad_request]
--- request
GET /v1/verify/?code&code=12345678901
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- record
agency=example-bank subject= decision=deny:bad_request
--- secret
12345678901



=== TEST 4: finding 3: the code after a ";" (NGINX splits on "&" only, some backends on ";" too) [backend 0; trail deny:bad_request]
--- request
GET /v1/verify/?lang=ja;code=12345678901
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- error_log
juki: ambiguous request: ";" next to the juki_subject parameter
--- record
agency=example-bank subject= decision=deny:bad_request
--- secret
12345678901



=== TEST 5: finding 3: array notation (code[]) and a name encoded twice (c%256Fde) [backend 0; trail deny:bad_request deny:bad_request]
--- request eval
["GET /v1/verify/?code[]=12345678901", "GET /v1/verify/?c%256Fde=12345678901"]
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-1
--- error_code eval
[400, 400]
--- response_body_like eval
[qr/"error":"bad_request"/, qr/"error":"bad_request"/]
--- record
agency=example-bank subject= decision=deny:bad_request
agency=example-bank subject= decision=deny:bad_request
--- secret
12345678901



=== TEST 6: finding 4: a national agency, CODE and code with two residents [backend 0; trail deny:bad_request]
--- request
GET /v1/residents/?CODE=11111111111&code=22222222222
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- record
agency=pension-service kind=national subject= uri=/v1/residents/ decision=deny:bad_request
--- secret
11111111111
22222222222
--- gw_access
GET /v1/residents/?... HTTP/1.0 400



=== TEST 7: finding 4: an agency mapped by subject alone (shibuya-city), the code twice, one in the path too [backend 0; trail deny:bad_request]
--- request
GET /v1/residents/22222222222/?code=11111111111&code=22222222222
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: tax.assessment
Juki-Operator: clerk-7
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- record
agency=shibuya-city kind=municipality subject= uri=/v1/residents/{code}/ decision=deny:bad_request
--- secret
11111111111
22222222222
--- gw_access
GET /v1/residents/{code}/?... HTTP/1.0 400



=== TEST 8: finding 5: a raw "#" before the query, private agency [backend 0; trail deny:bad_request]
--- request
GET /v1/verify/#?code=12345678901
--- more_headers
X-Test-Cert: private
Juki-Purpose: identity.verification
Juki-Operator: teller-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- error_log
juki: ambiguous request: "#" in the request target
--- record
agency=example-bank subject= uri=/v1/verify/ decision=deny:bad_request
--- secret
12345678901
--- gw_access
GET /v1/verify/?... HTTP/1.0 400



=== TEST 9: finding 5: "#" hides another path from the scope check (/v1/echo#/../residents/) [backend 0; trail deny:bad_request]
--- request
GET /v1/echo#/../residents/?code=12345678901
--- more_headers
Juki-Purpose: network.diagnostics
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- record
agency=pension-service subject= uri=/v1/echo purpose= decision=deny:bad_request
--- secret
12345678901
../residents
--- gw_access
GET /v1/echo?... HTTP/1.0 400



=== TEST 10: finding 5: a "#" inside the query (NGINX's $arg_code ends there) [backend 0; trail deny:bad_request]
--- request
GET /v1/residents/?x=1#&code=12345678901
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: tax.assessment
Juki-Operator: clerk-7
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- record
agency=shibuya-city subject= uri=/v1/residents/ decision=deny:bad_request
--- secret
12345678901



=== TEST 11: finding 6: %3F decodes into $uri: the recorded path ends before it [backend 0; trail deny:bad_request]
--- request
GET /v1/residents/x/%3Fcode=12345678901
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- error_log
juki: ambiguous request: "?" or "#" decoded in the path
--- record
agency=pension-service subject= uri=/v1/residents/x/ decision=deny:bad_request
--- secret
12345678901
--- gw_access
GET /v1/residents/x/?... HTTP/1.0 400



=== TEST 12: finding 6: %23, and %253F for a backend that decodes twice [backend 0; trail deny:bad_request deny:bad_request]
--- request eval
["GET /v1/residents/x/%23code=12345678901", "GET /v1/residents/y/%253Fcode=12345678901"]
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: tax.assessment
Juki-Operator: clerk-7
--- error_code eval
[400, 400]
--- response_body_like eval
[qr/"error":"bad_request"/, qr/"error":"bad_request"/]
--- record
agency=shibuya-city subject= uri=/v1/residents/x/ decision=deny:bad_request
agency=shibuya-city subject= uri=/v1/residents/y/ decision=deny:bad_request
--- secret
12345678901
--- gw_access
GET /v1/residents/x/?... HTTP/1.0 400
GET /v1/residents/y/?... HTTP/1.0 400



=== TEST 13: finding 7: underscores_in_headers on: Juki_Agency, Juki_Operator, Juki_Extra never reach the backend [backend 1; trail allow]
--- http_config eval
main::ambiguous_config(http => "    underscores_in_headers on;\n")
--- request
GET /v1/residents/
--- more_headers
Juki_Agency: hidden-city
Juki_Operator: innocent
Juki_Extra: smuggled
JUKI_agency_kind: national
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","kind":"national","purpose":"pension.benefit","operator":"op-1","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/residents/"\}$
--- record
agency=pension-service operator=op-1 decision=allow



=== TEST 14: finding 7: ignore_invalid_headers off: the same headers are dropped [backend 1; trail allow]
--- http_config eval
main::ambiguous_config(http => "    ignore_invalid_headers off;\n")
--- request
GET /v1/residents/
--- more_headers
Juki_Agency: hidden-city
Juki_Operator: innocent
Juki_Extra: smuggled
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 200
--- response_body_like chomp
^\{"agency":"pension-service","kind":"national","purpose":"pension.benefit","operator":"op-1","audit_id":"[0-9a-f]{16}-\d+","extra":"","method":"GET","uri":"/v1/residents/"\}$



=== TEST 15: finding 8: X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override [backend 0; trail deny:bad_request deny:bad_request deny:bad_request]
--- request eval
["GET /v1/residents/?code=12345678901", "GET /v1/residents/", "GET /v1/residents/"]
--- more_headers eval
["X-HTTP-Method-Override: DELETE\nJuki-Purpose: pension.benefit\nJuki-Operator: op-1",
 "x-http-method: PUT\nJuki-Purpose: pension.benefit\nJuki-Operator: op-1",
 "X-Method-Override: DELETE\nJuki-Purpose: pension.benefit\nJuki-Operator: op-1"]
--- error_code eval
[400, 400, 400]
--- response_body_like eval
[qr/^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$/,
 qr/^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$/,
 qr/^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$/]
--- error_log
juki: ambiguous request: method-override header
--- record
agency=pension-service subject= uri=/v1/residents/ decision=deny:bad_request
agency=pension-service subject= uri=/v1/residents/ decision=deny:bad_request
agency=pension-service subject= uri=/v1/residents/ decision=deny:bad_request
--- secret
12345678901
--- gw_access
GET /v1/residents/?... HTTP/1.0 400
GET /v1/residents/ HTTP/1.0 400
GET /v1/residents/ HTTP/1.0 400



=== TEST 16: finding 8: X_HTTP_Method_Override with underscores_in_headers on, agency mapped by subject [backend 0; trail deny:bad_request]
--- http_config eval
main::ambiguous_config(http => "    underscores_in_headers on;\n")
--- request
GET /v1/residents/
--- more_headers
X-Test-Cert: municipality
X_HTTP_Method_Override: DELETE
Juki-Purpose: tax.assessment
Juki-Operator: clerk-7
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- record
agency=shibuya-city decision=deny:bad_request



=== TEST 17: finding 9 over HTTP/1: a refusal without a code keeps no query value in either log [backend 0; trail deny:bad_purpose]
--- request
GET /v1/residents/?name=Yamada-Taro&born=1970-01-01
--- more_headers
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_purpose","audit_id":"[0-9a-f]{16}-\d+"\}$
--- error_log eval
qr/juki: denied, bad_purpose, .*request: "GET \/v1\/residents\/\?\.\.\. HTTP\/1\.0"/
--- secret
Yamada-Taro
1970-01-01
--- gw_access
GET /v1/residents/?... HTTP/1.0 400



=== TEST 18: finding 9 over HTTP/1: an allowed request to a dead backend: the upstream context keeps no query value [backend 0; trail allow]
--- http_config eval
main::ambiguous_config(upstream => 'http://127.0.0.1:1')
--- request
GET /v1/residents/?name=Yamada-Taro&born=1970-01-01
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 502
--- error_log eval
qr/connect\(\) failed .*request: "GET \/v1\/residents\/\?\.\.\. HTTP\/1\.0", upstream: "http:\/\/127\.0\.0\.1:1\/v1\/residents\/\?\.\.\."/
--- secret
Yamada-Taro
1970-01-01
--- gw_access
GET /v1/residents/?... HTTP/1.0 502



=== TEST 19: legitimate queries pass: the code alone, other parameters, %20 and ";" in other values, names that only contain "code" [backend 4; trail allow allow allow allow]
--- request eval
["GET /v1/residents/?code=12345678901",
 "GET /v1/residents/?lang=ja&code=12345678901&q=a%20b",
 "GET /v1/residents/?q=a;b&code=12345678901&codes=2&xcode=3&code_x=4",
 "GET /v1/residents/?q=Yamada%20Taro&lang=ja"]
--- more_headers
X-Test-Cert: municipality
Juki-Purpose: tax.assessment
Juki-Operator: clerk-7
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/"agency":"shibuya-city".*"uri":"\/v1\/residents\/\?code=12345678901"/,
 qr/"uri":"\/v1\/residents\/\?lang=ja&code=12345678901&q=a%20b"/,
 qr/"uri":"\/v1\/residents\/\?q=a;b&code=12345678901&codes=2&xcode=3&code_x=4"/,
 qr/"uri":"\/v1\/residents\/\?q=Yamada%20Taro&lang=ja"/]
--- record
agency=shibuya-city subject=pseudonym(12345678901) uri=/v1/residents/ decision=allow
agency=shibuya-city subject=pseudonym(12345678901) uri=/v1/residents/ decision=allow
agency=shibuya-city subject=pseudonym(12345678901) uri=/v1/residents/ decision=allow
agency=shibuya-city subject= uri=/v1/residents/ decision=allow
--- secret
12345678901
Yamada
--- gw_access
GET /v1/residents/?... HTTP/1.0 200
GET /v1/residents/?... HTTP/1.0 200
GET /v1/residents/?... HTTP/1.0 200
GET /v1/residents/?... HTTP/1.0 200



=== TEST 20: finding 9 over HTTP/2: no query value in $request or in the error log; "#" and %3F refused there too [backend 1; trail allow deny:bad_purpose deny:bad_request deny:bad_request deny:bad_request]
--- config eval
JukiTest::client_config() . "    location = /noop { return 204; }\n"
--- init
$main::H2{bad_purpose} = main::h2(path => '/v1/residents/?name=Yamada-Taro&born=1970-01-01',
                                  headers => ['Juki-Operator: op-1']);
$main::H2{allowed} = main::h2(path => '/v1/residents/?code=33333333333',
                              headers => ['Juki-Purpose: pension.benefit', 'Juki-Operator: op-1']);
$main::H2{fragment} = main::h2(target => '/v1/verify/#?code=12345678901', cert => 'private',
                               headers => ['Juki-Purpose: identity.verification', 'Juki-Operator: teller-1']);
$main::H2{decoded} = main::h2(path => '/v1/residents/x/%3Fcode=44444444444',
                              headers => ['Juki-Purpose: pension.benefit', 'Juki-Operator: op-1']);
$main::H2{repeated} = main::h2(path => '/v1/residents/?CODE=55555555555&code=66666666666',
                               cert => 'municipality',
                               headers => ['Juki-Purpose: tax.assessment', 'Juki-Operator: clerk-7']);
select(undef, undef, undef, 0.3);
--- request
GET /noop
--- error_code: 204
--- error_log eval
[qr/juki: denied, bad_purpose, .*request: "GET \/v1\/residents\/\?\.\.\. HTTP\/2\.0"/,
 qr/juki: denied, bad_request, agency: "shibuya-city".*request: "GET \/v1\/residents\/\?\.\.\. HTTP\/2\.0"/]
--- record
agency=pension-service decision=deny:bad_purpose
agency=pension-service subject=pseudonym(33333333333) uri=/v1/residents/ decision=allow
agency=example-bank subject= uri=/v1/verify/ decision=deny:bad_request
agency=pension-service subject= uri=/v1/residents/x/ decision=deny:bad_request
agency=shibuya-city subject= uri=/v1/residents/ decision=deny:bad_request
--- secret
Yamada-Taro
1970-01-01
33333333333
12345678901
44444444444
55555555555
66666666666
--- gw_access
GET /v1/residents/?... HTTP/2.0 400
GET /v1/residents/?... HTTP/2.0 200
GET /v1/verify/?... HTTP/2.0 400
GET /v1/residents/x/?... HTTP/2.0 400
GET /v1/residents/?... HTTP/2.0 400



=== TEST 21: finding 19: the access handler fails (500, a code that cannot be masked) and error_page leads back into the juki location: refused at once, not hung [backend 0; trail none]
--- http_config eval
main::ambiguous_config(location => "error_page 500 = /v1/residents/after-error;\n")
--- request eval
"GET /v1/residents/" . ('a' x 90) . "?code="
    . CORE::join('', map { sprintf '%%%02X', $_ } 0x2a .. 0x7e)
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- timeout: 5
--- error_code: 503
--- response_body_like chomp
^\{"error":"audit_unavailable"\}$
--- error_log
juki: a resident code of every printable character cannot be masked, request refused
--- secret
%2A%2B%2C
*+,-./0123
--- gw_access
GET ... HTTP/1.0 503



=== TEST 22: juki_subject ${arg_code} (braces) is a plain $arg_ too [backend 0; trail deny:bad_request]
--- http_config eval
main::ambiguous_config(subject => '${arg_code}')
--- request
GET /v1/residents/?Code=12345678901
--- more_headers
Juki-Purpose: pension.benefit
Juki-Operator: op-1
--- error_code: 400
--- response_body_like chomp
^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$
--- secret
12345678901



=== TEST 23: juki_subject $http_x_resident_code: the header twice (once with "_") is ambiguous; the query is not checked then, "#" still is [backend 1; trail allow deny:bad_request deny:bad_request]
--- http_config eval
main::ambiguous_config(subject => '$http_x_resident_code',
                       http => "    underscores_in_headers on;\n")
--- request eval
["GET /v1/residents/?code=1&code=2", "GET /v1/residents/", "GET /v1/residents/#x"]
--- more_headers eval
["X-Resident-Code: 12345678901\nJuki-Purpose: pension.benefit\nJuki-Operator: op-1",
 "X-Resident-Code: 12345678901\nX_Resident_Code: 22222222222\nJuki-Purpose: pension.benefit\nJuki-Operator: op-1",
 "X-Resident-Code: 12345678901\nJuki-Purpose: pension.benefit\nJuki-Operator: op-1"]
--- error_code eval
[200, 400, 400]
--- response_body_like eval
[qr/"uri":"\/v1\/residents\/\?code=1&code=2"/,
 qr/^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$/,
 qr/^\{"error":"bad_request","audit_id":"[0-9a-f]{16}-\d+"\}$/]
--- record
subject=pseudonym(12345678901) decision=allow
subject= decision=deny:bad_request
subject= decision=deny:bad_request
--- secret
12345678901
22222222222
