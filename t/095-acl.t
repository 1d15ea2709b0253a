# The Redis users of conf/juki-users.acl.in (SPEC section 2, issue 10): on
# a real redis-server started with the rendered ACL file, the gateway's
# credential can run its function and append, and can delete, trim,
# rename, expire, overwrite, prepend, reorder or flush nothing of the
# trail; each other role does what its jukictl commands need and no more.
# No gateway here: what is tested is the ACL against Redis itself.

use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);

my $port = ($ENV{TEST_NGINX_REDIS_PORT} || 16379) + 8;
my $jukictl = $ENV{JUKICTL} || 'build/jukictl';
my $dir = tempdir('juki-acl.XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $started;

END {
    local $?;
    return unless $started;
    system('redis-cli', '-p', $port, '--user', 'juki-admin', '--pass',
           secret('admin'), '--no-auth-warning', 'SHUTDOWN', 'NOSAVE');
}

is(system('scripts/acl.sh', 'render', $dir), 0, 'acl.sh renders the file');

sub secret {
    open(my $fh, '<', "$dir/$_[0].pass") or die "$dir/$_[0].pass: $!";
    my $p = <$fh>;
    close $fh;
    chomp $p;
    return $p;
}

open(my $fh, '<', "$dir/users.acl") or die $!;
my $acl = do { local $/; <$fh> };
close $fh;
for my $role (qw(admin gw control reader archiver)) {
    my $p = secret($role);
    unlike($acl, qr/\Q$p\E/, "the ACL file holds no password of $role");
}

is(system('redis-server', '--port', $port, '--bind', '127.0.0.1',
          '--aclfile', "$dir/users.acl", '--save', '', '--appendonly', 'no',
          '--enable-debug-command', 'yes', '--dir', $dir,
          '--pidfile', "$dir/redis.pid", '--logfile',
          "$dir/redis.log", '--daemonize', 'yes'), 0, 'redis-server started');
$started = 1;

# as ROLE (undef: the default user), the reply redis-cli prints
sub as {
    my ($role, @cmd) = @_;
    my @auth = $role ? ('--user', "juki-$role", '--pass', secret($role),
                        '--no-auth-warning') : ();
    open(my $out, '-|', 'redis-cli', '-p', $port, @auth, @cmd)
        or die "redis-cli: $!";
    my $r = do { local $/; <$out> } // '';
    close $out;
    return $r;
}

for (1 .. 50) {
    last if as('admin', 'PING') =~ /PONG/;
    select(undef, undef, undef, 0.1);
}
like(as('admin', 'PING'), qr/PONG/, 'the admin is in');
like(as(undef, 'PING'), qr/NOAUTH|NOPERM|WRONGPASS/,
     'the default user is off');

# the function library, loaded by the admin, as an operator does
local $ENV{JUKI_REDIS} = "127.0.0.1:$port";
local $ENV{JUKI_REDIS_USER} = 'juki-admin';
local $ENV{JUKI_REDIS_PASSWORD} = secret('admin');
my $load = `$jukictl function load 2>&1`;
like($load, qr/^function library (juki_[0-9a-f]{12}) loaded$/m,
     'jukictl function load as the admin');
my ($lib) = $load =~ /(juki_[0-9a-f]{12})/;
$lib //= 'juki_none';
my $fn = "${lib}_batch";

my $list = 'juki:{pension}:audit';

# the gateway's own work: one call, a record Redis decides and one it does
# not, a rate limit, the operator stop it must read
my $r = as('gw', 'FCALL', $fn, 1, $list, 'gw-1', '', '',
           'R', 1, 'Abody', 'op-1', 'pension.benefit', '1000 2000 0 0',
           'SUBJECT-16-BYTES', 'D', 1, 'Ddenied', 'op-1');
unlike($r, qr/NOPERM|ERR/, 'the gateway runs its function under the ACL')
    or diag($r);
is(as('admin', 'LLEN', $list), "2\n", 'its records are appended');
is(as('admin', 'LINDEX', $list, 0), "Abody\x01\n",
   'the decision byte appended by the function');
like(as('gw', 'RPUSH', $list, 'x'), qr/^\d+$/, 'RPUSH: allowed');
like(as('gw', 'EXISTS', 'juki:{pension}:stop:op:op-1'), qr/^0$/,
     'EXISTS of a stop switch: allowed');
like(as('gw', 'PUBLISH', 'juki:alerts', '{}'), qr/^\d+$/,
     'PUBLISH on juki:alerts: allowed');
like(as('gw', 'PUBLISH', 'other', '{}'), qr/NOPERM/,
     'PUBLISH elsewhere: refused');

# an anomaly rule that stops: SETNX may set a switch, nothing may lift one
as('admin', 'SET', 'juki:{pension}:stop', 'by the operator');
like(as('gw', 'SETNX', 'juki:{pension}:stop', 'x'), qr/^0$/,
     'SETNX of a set stop switch: allowed, changes nothing');
for my $c (['SET', 'juki:{pension}:stop', 'x', 'PX', '1'],
           ['DEL', 'juki:{pension}:stop'],
           ['PEXPIRE', 'juki:{pension}:stop', '1'],
           ['SET', 'juki:stop', 'x', 'PX', '1'],
           ['GETDEL', 'juki:{pension}:stop'])
{
    like(as('gw', @$c), qr/NOPERM/, "gateway: @$c refused");
}
is(as('admin', 'GET', 'juki:{pension}:stop'), "by the operator\n",
   'the operator stop is still set');

# everything that would remove, reorder or rewrite the trail
my @forbidden = (
    ['DEL', $list], ['UNLINK', $list], ['LTRIM', $list, 1, -1],
    ['LSET', $list, 0, 'x'], ['LREM', $list, 0, 'x'], ['LPOP', $list],
    ['RPOP', $list], ['LMOVE', $list, $list, 'LEFT', 'RIGHT'],
    ['RPOPLPUSH', $list, $list], ['LPUSH', $list, 'x'],
    ['LINSERT', $list, 'BEFORE', 'Abody', 'x'], ['RENAME', $list, 'x'],
    ['RENAMENX', $list, 'juki:{pension}:stop'], ['EXPIRE', $list, 1],
    ['PEXPIRE', $list, 1], ['EXPIREAT', $list, 1], ['PERSIST', $list],
    ['SET', $list, 'x'], ['GETDEL', $list],
    ['COPY', 'juki:{pension}:rl', $list, 'REPLACE'],
    ['RESTORE', $list, 0, 'x', 'REPLACE'],
    ['SORT', 'juki:{pension}:rl', 'STORE', $list],
    ['XADD', $list, 'MAXLEN', 0, '*', 'f', 'v'], ['XTRIM', $list, 'MAXLEN', 0],
    ['XSETID', $list, '9999999999999-0'],
    ['INCRBY', 'juki:{pension}:trimmed', 5], ['SET', 'juki:{pension}:trimmed', 5],
    ['MOVE', $list, 1], ['SWAPDB', 0, 1], ['FLUSHALL'], ['FLUSHDB'],
    ['FUNCTION', 'LOAD', 'REPLACE', "#!lua name=$lib\nredis.register_function('${lib}_batch', function() return 1 end)"],
    ['FUNCTION', 'DELETE', $lib], ['FUNCTION', 'FLUSH'],
    ['FUNCTION', 'RESTORE', 'x', 'REPLACE'],
    ['EVAL', "return redis.call('DEL', KEYS[1])", 1, $list],
    ['EVALSHA', 'a' x 40, 0], ['SCRIPT', 'LOAD', 'return 1'],
    ['CONFIG', 'SET', 'appendonly', 'no'], ['DEBUG', 'SLEEP', 0],
    ['MIGRATE', '127.0.0.1', 1, $list, 0, 1], ['ACL', 'SETUSER', 'juki-gw', '+@all'],
    ['SHUTDOWN', 'NOSAVE'], ['OBJECT', 'FREQ', $list], ['KEYS', '*'],
    ['LRANGE', $list, 0, -1], ['MONITOR'],
);
for my $c (@forbidden) {
    my $out = as('gw', @$c);
    like($out, qr/NOPERM/, "gateway: $c->[0] " . ($c->[1] // '') . ' refused')
        or diag($out);
}
is(as('admin', 'LLEN', $list), "3\n", 'the trail is untouched');

# the function itself cannot be turned against the trail: a malformed call
# is refused before it writes, and the keys it takes are audit lists only
like(as('gw', 'FCALL', $fn, 1, 'juki:{pension}:stop', 'gw-1', '', '',
        'P', 1, 'x'), qr/bad key|NOPERM/, 'FCALL on another key: refused');
like(as('gw', 'FCALL', $fn, 1, $list, 'gw-1', '', '', 'P', 2, 'x'),
     qr/bad key index/, 'FCALL with a bad group: refused');
is(as('admin', 'LLEN', $list), "3\n", 'nothing written by refused calls');

# control: stop and resume with their records, nothing else of the trail
like(as('control', 'SET', 'juki:{pension}:stop:op:x', 'why'), qr/OK/,
     'control: SET of a stop switch');
like(as('control', 'DEL', 'juki:{pension}:stop:op:x'), qr/^1$/,
     'control: DEL of a stop switch');
like(as('control', 'RPUSH', $list, 'Kctl'), qr/^\d+$/,
     'control: RPUSH of a control record');
for my $c (['LTRIM', $list, 1, -1], ['DEL', $list], ['LSET', $list, 0, 'x'],
           ['FUNCTION', 'LOAD', 'x'], ['FLUSHALL'], ['SET', $list, 'x'])
{
    like(as('control', @$c), qr/NOPERM/, "control: $c->[0] refused");
}

# reader: reads everything of juki:*, writes nothing
like(as('reader', 'LRANGE', $list, 0, -1), qr/Abody/, 'reader: LRANGE');
like(as('reader', 'GET', 'juki:stop'), qr/^$/m, 'reader: GET');
like(as('reader', 'SCAN', 0, 'MATCH', 'juki:*'), qr/juki/, 'reader: SCAN');
for my $c (['RPUSH', $list, 'x'], ['SET', 'juki:stop', 'x'], ['DEL', $list],
           ['LTRIM', $list, 1, -1], ['FCALL', $fn, 1, $list, 'n', '', '',
            'P', 1, 'x'], ['FLUSHALL'])
{
    like(as('reader', @$c), qr/NOPERM/, "reader: $c->[0] refused");
}

# archiver: trims what it archived, with its counter, in one MULTI
my $multi = `printf 'MULTI\\nLTRIM %s 1 -1\\nINCRBY juki:{pension}:trimmed 1\\nEXEC\\n' '$list' | redis-cli -p $port --user juki-archiver --pass '${\ secret('archiver')}' --no-auth-warning`;
like($multi, qr/OK\s+QUEUED\s+QUEUED\s+OK\s+1/s,
     'archiver: LTRIM and INCRBY of trimmed in one MULTI');
is(as('admin', 'GET', 'juki:{pension}:trimmed'), "1\n", 'trimmed counter');
for my $c (['RPUSH', $list, 'x'], ['DEL', $list], ['LSET', $list, 0, 'x'],
           ['SET', 'juki:{pension}:stop', 'x'], ['FLUSHALL'])
{
    like(as('archiver', @$c), qr/NOPERM/, "archiver: $c->[0] refused");
}

done_testing();
